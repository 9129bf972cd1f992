package main

// The files `twtrace record` creates as root: never through a link another
// user planted, never over an existing file unless --force, and then by
// rename; mode 0600; a clear sentence and exit code 2 for a path it refuses.

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/twtrace/twtrace/internal/tracertest"
)

// asNobody runs a command as uid and gid 65534.
func asNobody(t *testing.T, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v as nobody: %v: %s", name, args, err, out)
	}
}

// stickyDir is a world-writable sticky directory, as /tmp is, that user
// 65534 can reach.
func stickyDir(t *testing.T) string {
	t.Helper()
	base := t.TempDir()
	for _, d := range []string{filepath.Dir(base), base} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(base, "tmp")
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o1777); err != nil {
		t.Fatal(err)
	}
	return dir
}

// record runs `twtrace record` for 300 ms and returns its exit code and stderr.
func runRecordFor(t *testing.T, bin string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"record", "--duration", "300ms"}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode(), stderr.String()
	case err != nil:
		t.Fatal(err)
	}
	return 0, stderr.String()
}

func TestRecordFileSafety(t *testing.T) {
	tracertest.Require(t)
	tracertest.LockBPF(t)
	bin := buildBinary(t)
	dir := stickyDir(t)
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "cap.jsonl")
	asNobody(t, "ln", "-s", target, link)
	dangling := filepath.Join(dir, "dangling.jsonl")
	asNobody(t, "ln", "-s", filepath.Join(dir, "created-by-root"), dangling)
	loop := filepath.Join(dir, "loop.jsonl")
	asNobody(t, "ln", "-s", loop, loop)
	existing := filepath.Join(dir, "existing.jsonl.zst")
	asNobody(t, "sh", "-c", "printf old > "+existing+" && ln "+existing+" "+filepath.Join(dir, "other-name"))
	sub := filepath.Join(dir, "a-directory")
	os.Mkdir(sub, 0o755)

	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"planted link", []string{"-o", link}, "is a symbolic link: twtrace does not write through links"},
		{"planted link, --force", []string{"-o", link, "--force"}, "is a symbolic link: twtrace does not write through links"},
		{"dangling link", []string{"-o", dangling, "--force"}, "is a symbolic link"},
		{"symlink loop", []string{"-o", loop, "--force"}, "is a symbolic link"},
		{"existing file", []string{"-o", existing}, "exists: choose another file, or add --force to replace it"},
		{"directory", []string{"-o", sub, "--force"}, "is a directory"},
		{"rotated files of an earlier recording", []string{"-o", filepath.Join(dir, "other.jsonl"), "--max-size", "1M"}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.want == "" {
				os.WriteFile(filepath.Join(dir, "other.1.jsonl"), nil, 0o600)
				c.want = "other.1.jsonl exists, from an earlier recording: choose another file, or add --force to remove it"
			}
			code, stderr := runRecordFor(t, bin, c.args...)
			// One line: a file that cannot be used is no usage error, so no
			// usage hint follows.
			if code != exitUsage || !strings.Contains(stderr, c.want) || strings.Count(stderr, "\n") != 1 {
				t.Errorf("exit %d, stderr %q; want exit 2 saying %q", code, stderr, c.want)
			}
		})
	}
	if b, _ := os.ReadFile(target); string(b) != "precious" {
		t.Errorf("the planted link's target was written: %q", b)
	}
	if _, err := os.Lstat(filepath.Join(dir, "created-by-root")); err == nil {
		t.Error("a dangling link's target was created")
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the planted link was replaced: %v", err)
	}

	// --force replaces the existing file by a new one: the old inode, seen
	// through its other name, is untouched.
	code, stderr := runRecordFor(t, bin, "-o", existing, "--force")
	if code != exitOK {
		t.Fatalf("--force over an existing file: exit %d: %s", code, stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "other-name")); string(b) != "old" {
		t.Errorf("the replaced file was written in place: its other name reads %q", b)
	}
	var st unix.Stat_t
	if err := unix.Lstat(existing, &st); err != nil || st.Mode&0o7777 != 0o600 || st.Uid != 0 || st.Nlink != 1 {
		t.Errorf("the replacement: mode %o uid %d links %d (%v), want 0600 root 1", st.Mode&0o7777, st.Uid, st.Nlink, err)
	}
	if code, out, errs := runCLI("replay", "--json", existing); code != exitOK || errs != "" {
		t.Errorf("replay of the replacement: exit %d, %q %q", code, out, errs)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*.tmp-*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// A read-only directory (for root, a read-only file system: permission
// bits do not stop it): exit 2 before anything is loaded, and one sentence.
func TestRecordReadOnlyDir(t *testing.T) {
	tracertest.Require(t)
	bin := buildBinary(t)
	dir := t.TempDir()
	ro := newMountThread(t, dir, unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, "size=64k")
	var code int
	var stderr string
	ro.Do(func() error {
		code, stderr = runRecordFor(t, bin, "-o", filepath.Join(dir, "cap.jsonl"))
		return nil
	})
	if code != exitUsage || !strings.Contains(stderr, "cannot create a file in "+dir+": read-only file system") {
		t.Errorf("exit %d, stderr %q; want exit 2 naming the read-only directory", code, stderr)
	}
}
