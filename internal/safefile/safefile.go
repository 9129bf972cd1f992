// Package safefile creates the files twtrace writes, which as root must
// never become a way to write somewhere else: mode 0600, never through a
// symbolic link, never over an existing file unless asked, and then by
// replacing the file itself (a new file renamed over it), never its target.
package safefile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// ErrExist is returned for a path that exists when replacing was not asked for.
var ErrExist = fs.ErrExist

// File is a file being written. With Replace, it is written under a
// temporary name in the same directory and renamed into place by Commit;
// Abort (or Close without Commit) removes it.
type File struct {
	*os.File
	path string // where it ends up
	temp string // the temporary name, "" when written in place
}

// Create creates path for writing. An existing path is an error wrapping
// ErrExist unless replace is set; a symbolic link, a directory or a
// symlink loop at path is always an error (the caller says it is bad
// usage). With replace, the new file is renamed over the old one by Commit.
func Create(path string, replace bool) (*File, error) {
	if fi, err := os.Lstat(path); err == nil {
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			return nil, fmt.Errorf("%s is a symbolic link: twtrace does not write through links", path)
		case fi.IsDir():
			return nil, fmt.Errorf("%s is a directory", path)
		case !fi.Mode().IsRegular() && !replace:
			return nil, fmt.Errorf("%s exists and is not a regular file: %w", path, ErrExist)
		case !fi.Mode().IsRegular():
			return nil, fmt.Errorf("%s is not a regular file: twtrace replaces only regular files", path)
		case !replace:
			return nil, fmt.Errorf("%s: %w", path, ErrExist)
		}
		return createTemp(path)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			return nil, fmt.Errorf("%s is a symbolic link: twtrace does not write through links", path)
		}
		return nil, err
	}
	return &File{File: f, path: path}, nil
}

// createTemp makes the replacement in the target's directory, so that the
// rename is atomic and never crosses a file system.
func createTemp(path string) (*File, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return &File{File: f, path: path, temp: f.Name()}, nil
}

// Path is where the file ends up.
func (f *File) Path() string { return f.path }

// Commit syncs and closes the file and, for a replacement, renames it
// over the old file (which, if it became a symbolic link meanwhile, is
// replaced itself: rename never follows a link).
func (f *File) Commit() error {
	if err := f.File.Sync(); err != nil && !errors.Is(err, unix.EINVAL) {
		f.Abort()
		return err
	}
	if err := f.File.Close(); err != nil {
		f.Abort()
		return err
	}
	if f.temp == "" {
		return nil
	}
	if err := os.Rename(f.temp, f.path); err != nil {
		os.Remove(f.temp)
		return err
	}
	f.temp = ""
	return nil
}

// Abort closes the file and removes a replacement that was not committed.
func (f *File) Abort() {
	f.File.Close()
	if f.temp != "" {
		os.Remove(f.temp)
		f.temp = ""
	}
}
