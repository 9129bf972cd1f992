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

// Publish puts a replacement at its path at once, open for writing; the
// old file's inode (a hard link shows it) is never written.
func TestPublish(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "cap")
	os.WriteFile(p, []byte("old"), 0o644)
	other := filepath.Join(dir, "other-name")
	if err := os.Link(p, other); err != nil {
		t.Fatal(err)
	}
	f, err := Create(p, true)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("header\n")
	if err := f.Publish(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "header\n" {
		t.Errorf("after Publish the path holds %q", b)
	}
	f.WriteString("more\n")
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "header\nmore\n" {
		t.Errorf("committed %q", b)
	}
	if b, _ := os.ReadFile(other); string(b) != "old" {
		t.Errorf("the old file was written through its other name: %q", b)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode().Perm())
	}
}

// Remove leaves nothing of a file Create made, in place or as a replacement.
func TestRemove(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "new")
	f, _ := Create(p, false)
	f.Remove()
	old := filepath.Join(dir, "old")
	os.WriteFile(old, []byte("keep"), 0o600)
	g, _ := Create(old, true)
	g.Remove()
	if ents, _ := os.ReadDir(dir); len(ents) != 1 || ents[0].Name() != "old" {
		t.Errorf("left behind: %v", ents)
	}
	if b, _ := os.ReadFile(old); string(b) != "keep" {
		t.Errorf("a removed replacement changed the file: %q", b)
	}
}

// Append creates a log 0600, appends to the user's own, and refuses what
// it must never write: links, directories, files of other names or users.
func TestAppend(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "log")
	for _, line := range []string{"one\n", "two\n"} {
		f, err := Append(p)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(line)
		f.Close()
	}
	if b, _ := os.ReadFile(p); string(b) != "one\ntwo\n" {
		t.Errorf("appended %q", b)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode().Perm())
	}
	link := filepath.Join(dir, "link")
	os.Symlink(p, link)
	hard := filepath.Join(dir, "hard")
	os.Link(p, hard)
	for _, c := range []struct{ path, want string }{
		{link, "symbolic link"},
		{dir, "is a directory"},
		{hard, "has 2 names"},
		{"/dev/null", "not a regular file"},
	} {
		f, err := Append(c.path)
		if err == nil {
			f.Close()
		}
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Append(%s): %v, want a refusal saying %q", c.path, err, c.want)
		}
	}
	if os.Geteuid() == 0 {
		theirs := filepath.Join(dir, "theirs")
		os.WriteFile(theirs, nil, 0o666)
		os.Chown(theirs, 65534, 65534)
		if _, err := Append(theirs); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "belongs to uid 65534") {
			t.Errorf("Append to another user's file: %v", err)
		}
	}
	if b, _ := os.ReadFile(p); string(b) != "one\ntwo\n" {
		t.Errorf("a refused Append wrote: %q", b)
	}
}
