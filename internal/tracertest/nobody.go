package tracertest

import (
	"io"
	"os"
	"path/filepath"
	"testing"
)

// Nobody is the user and group unprivileged tests run as.
const (
	NobodyUID = 65534
	NobodyGID = 65534
)

// PublicDir returns a directory of the test that every user may enter and
// write to: t.TempDir's are root's alone. It goes with the test.
func PublicDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	// t.TempDir is a fresh directory inside one made for the test: open both.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o777|os.ModeSticky); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// PublicCopy copies an executable (the test binary: os.Args[0]) to a
// PublicDir, so that a process of another user can run it: the go tool
// builds it in a directory only root may enter.
func PublicCopy(t testing.TB, exe string) string {
	t.Helper()
	in, err := os.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	path := filepath.Join(PublicDir(t), filepath.Base(exe))
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}
