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

// ErrRefused marks a path twtrace never writes, whatever it is asked: a
// symbolic link (or a loop of them), a directory, a file that is not a
// regular file, a file another user owns or that has other names (Append).
// Callers report it as bad usage.
var ErrRefused = errors.New("refused")

// refusal is an error that Is ErrRefused.
type refusal string

func (r refusal) Error() string        { return string(r) }
func (r refusal) Is(target error) bool { return target == ErrRefused }

func refusef(format string, args ...any) error { return refusal(fmt.Sprintf(format, args...)) }

func symlinkRefusal(path string) error {
	return refusef("%s is a symbolic link: twtrace does not write through links", path)
}

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
			return nil, symlinkRefusal(path)
		case fi.IsDir():
			return nil, refusef("%s is a directory", path)
		case !fi.Mode().IsRegular() && !replace:
			return nil, fmt.Errorf("%s exists and is not a regular file: %w", path, ErrExist)
		case !fi.Mode().IsRegular():
			return nil, refusef("%s is not a regular file: twtrace replaces only regular files", path)
		case !replace:
			return nil, fmt.Errorf("%s: %w", path, ErrExist)
		}
		return createTemp(path)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			return nil, symlinkRefusal(path)
		}
		return nil, err
	}
	return &File{File: f, path: path}, nil
}

// Append opens path for appending (a log), creating it as Create does when
// it does not exist. An existing file is appended to only when it is a
// regular file of the calling user with no other name (one hard link): a
// file planted by someone else, or a link to one, is refused.
func Append(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		nf, err := Create(path, false)
		if errors.Is(err, ErrExist) {
			return Append(path) // created meanwhile: judge it as any existing file
		}
		if err != nil {
			return nil, err
		}
		return nf.File, nil
	case errors.Is(err, unix.ELOOP):
		return nil, symlinkRefusal(path)
	case errors.Is(err, unix.EISDIR):
		return nil, refusef("%s is a directory", path)
	case err != nil:
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, err
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		err = refusef("%s is not a regular file: twtrace appends only to regular files", path)
	case st.Uid != uint32(os.Geteuid()):
		err = refusef("%s belongs to uid %d: twtrace appends only to its user's own files", path, st.Uid)
	case st.Nlink != 1:
		err = refusef("%s has %d names (hard links): twtrace appends only to a file with one", path, st.Nlink)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
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

// Publish renames a replacement into place now and keeps it open: a file
// written for long (a capture) is at its path from its first bytes, not
// only once it is complete. For a file created in place it does nothing.
func (f *File) Publish() error {
	if f.temp == "" {
		return nil
	}
	if err := os.Rename(f.temp, f.path); err != nil {
		return err
	}
	f.temp = ""
	return nil
}

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

// Remove closes the file and removes it, whether a replacement not yet
// published or a file Create made in place: for a file that turned out
// useless (a capture without its header).
func (f *File) Remove() {
	f.File.Close()
	if f.temp != "" {
		os.Remove(f.temp)
		f.temp = ""
		return
	}
	os.Remove(f.path)
}

// Abort closes the file and removes a replacement that was not committed.
func (f *File) Abort() {
	f.File.Close()
	if f.temp != "" {
		os.Remove(f.temp)
		f.temp = ""
	}
}
