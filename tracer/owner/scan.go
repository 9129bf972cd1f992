package owner

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// ScanStats says what one scan of /proc read.
type ScanStats struct {
	Procs   int // process directories visited
	Skipped int // processes whose fds could not be read (exited, no permission)
	FDs     int // fd links read
	Sockets int // socket fds found
	Kept    int // socket inodes kept in the index
	Elapsed time.Duration
}

// index maps a socket inode to the fds open on it, in the order the scan
// found them: a process's fds together, as it lists them.
type index map[uint32][]fdRef

// fdRef is one fd of one process.
type fdRef struct {
	pid uint32
	fd  int32
}

// scan reads every <procRoot>/<pid>/fd once and indexes the sockets found.
// keep reports whether an inode not yet in idx may be added; it bounds the
// index. Only a procRoot that cannot be listed is an error: a process that
// exits mid-scan or hides its fds is counted in Skipped and passed over.
//
// It uses readlinkat on an open fd directory with one reused buffer rather
// than procfs's FileDescriptorTargets, which resolves a full path and
// allocates a string per fd; see BenchmarkScan for the difference.
func scan(procRoot string, keep func(idx index, inode uint32) bool) (index, ScanStats, error) {
	start := time.Now()
	var st ScanStats
	d, err := os.Open(procRoot)
	if err != nil {
		return nil, st, fmt.Errorf("list processes: %w", err)
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return nil, st, fmt.Errorf("list processes in %s: %w", procRoot, err)
	}
	idx := make(index)
	buf := make([]byte, 128)
	for _, name := range names {
		pid, err := strconv.ParseUint(name, 10, 32)
		if err != nil {
			continue // not a process: "self", "net", "sys", …
		}
		st.Procs++
		if !scanProcess(filepath.Join(procRoot, name, "fd"), uint32(pid), idx, buf, keep, &st) {
			st.Skipped++
		}
	}
	st.Kept = len(idx)
	st.Elapsed = time.Since(start)
	return idx, st, nil
}

// scanProcess adds the sockets of one process to idx; false when its fds
// cannot be listed or read.
func scanProcess(fdDir string, pid uint32, idx index, buf []byte,
	keep func(index, uint32) bool, st *ScanStats) bool {
	dir, err := os.Open(fdDir)
	if err != nil {
		return false
	}
	defer dir.Close()
	fds, err := dir.Readdirnames(-1)
	if err != nil {
		return false
	}
	dfd := int(dir.Fd())
	for _, name := range fds {
		fd, err := strconv.ParseInt(name, 10, 32)
		if err != nil {
			continue // not an fd
		}
		n, err := unix.Readlinkat(dfd, name, buf)
		if err == unix.EACCES || err == unix.EPERM {
			// Listing fds needs less than reading them (ptrace access):
			// every other fd of this process would fail the same way.
			return false
		}
		if err != nil {
			continue // closed since the listing
		}
		st.FDs++
		inode, ok := socketInode(buf[:n])
		if !ok {
			continue
		}
		st.Sockets++
		refs, known := idx[inode]
		if !known && !keep(idx, inode) {
			continue
		}
		idx[inode] = append(refs, fdRef{pid, int32(fd)})
	}
	return true
}

var socketPrefix = []byte("socket:[")

// socketInode parses the target of an fd link, "socket:[12345]". Socket
// inodes come from the kernel's get_next_ino(), an unsigned int.
func socketInode(target []byte) (uint32, bool) {
	rest, ok := bytes.CutPrefix(target, socketPrefix)
	if !ok || len(rest) < 2 || rest[len(rest)-1] != ']' {
		return 0, false
	}
	var v uint64
	for _, c := range rest[:len(rest)-1] {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
		if v > 1<<32-1 {
			return 0, false
		}
	}
	return uint32(v), true
}
