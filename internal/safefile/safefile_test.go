package safefile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func write(t *testing.T, path string, replace bool, data string) error {
	t.Helper()
	f, err := Create(path, replace)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(data); err != nil {
		f.Abort()
		return err
	}
	return f.Commit()
}

func TestCreate(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out")
	if err := write(t, p, false, "one"); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	if err := write(t, p, false, "two"); !errors.Is(err, ErrExist) {
		t.Errorf("over an existing file without replace: %v", err)
	}
	if err := write(t, p, true, "three"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "three" {
		t.Errorf("replaced content %q", b)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Errorf("replacement mode %v", fi.Mode().Perm())
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".out.tmp-*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// A planted symbolic link is never followed, with or without replace: its
// target is untouched.
func TestSymlinkNeverFollowed(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	os.WriteFile(target, []byte("keep"), 0o644)
	link := filepath.Join(dir, "link")
	os.Symlink(target, link)
	for _, replace := range []bool{false, true} {
		err := write(t, link, replace, "evil")
		if err == nil || !strings.Contains(err.Error(), "symbolic link") {
			t.Errorf("replace %v: %v, want a refusal naming the link", replace, err)
		}
	}
	if b, _ := os.ReadFile(target); string(b) != "keep" {
		t.Errorf("the link's target was written: %q", b)
	}
	// A dangling link too (a target that does not exist yet).
	dangling := filepath.Join(dir, "dangling")
	os.Symlink(filepath.Join(dir, "nothing"), dangling)
	if err := write(t, dangling, false, "x"); err == nil {
		t.Error("wrote through a dangling link")
	}
	if _, err := os.Stat(filepath.Join(dir, "nothing")); err == nil {
		t.Error("a dangling link's target was created")
	}
	loop := filepath.Join(dir, "loop")
	os.Symlink(loop, loop)
	if err := write(t, loop, true, "x"); err == nil {
		t.Error("wrote to a symlink loop")
	}
	if err := write(t, dir, true, "x"); err == nil || !strings.Contains(err.Error(), "directory") {
		t.Errorf("a directory: %v", err)
	}
}

func TestAbortLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out")
	os.WriteFile(p, []byte("old"), 0o600)
	f, err := Create(p, true)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("half")
	f.Abort()
	if b, _ := os.ReadFile(p); string(b) != "old" {
		t.Errorf("an aborted replacement changed the file: %q", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("left behind: %v", ents)
	}
}
