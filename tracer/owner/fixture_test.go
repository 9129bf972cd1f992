package owner

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// fakeProc is a /proc tree in a temporary directory, in the kernel's shapes.
type fakeProc struct {
	t    *testing.T
	root string
}

func newFakeProc(t *testing.T) *fakeProc {
	t.Helper()
	root := t.TempDir()
	f := &fakeProc{t: t, root: root}
	// Entries of a real /proc that are not processes: the scan must pass them over.
	f.write("self", "") // a file here; a symlink in the real tree
	f.mkdir("net")
	f.mkdir("sys/net/ipv4")
	return f
}

func (f *fakeProc) path(elem ...string) string {
	return filepath.Join(append([]string{f.root}, elem...)...)
}

func (f *fakeProc) mkdir(rel string) {
	f.t.Helper()
	if err := os.MkdirAll(f.path(rel), 0o755); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fakeProc) write(rel, content string) {
	f.t.Helper()
	if err := os.MkdirAll(filepath.Dir(f.path(rel)), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(f.path(rel), []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

// proc describes one fixture process.
type proc struct {
	pid     int
	comm    string
	cmdline string // NUL-separated, as the kernel writes it
	uids    string // the four Uid fields: real, effective, saved, fs
	cgroup  string // whole file
	fds     map[int]string
}

// add writes p's files: comm, cmdline, status, cgroup, and fd/N symlinks.
func (f *fakeProc) add(p proc) {
	f.t.Helper()
	dir := strconv.Itoa(p.pid)
	f.write(dir+"/comm", p.comm+"\n")
	f.write(dir+"/cmdline", p.cmdline)
	f.write(dir+"/status", "Name:\t"+p.comm+"\nUmask:\t0022\nState:\tS (sleeping)\n"+
		"Tgid:\t"+dir+"\nPid:\t"+dir+"\nPPid:\t1\n"+
		"Uid:\t"+p.uids+"\nGid:\t0\t0\t0\t0\nFDSize:\t64\nVmRSS:\t    1234 kB\nThreads:\t1\n")
	if p.cgroup != "" {
		f.write(dir+"/cgroup", p.cgroup)
	}
	f.mkdir(dir + "/fd")
	for fd, target := range p.fds {
		f.link(p.pid, fd, target)
	}
}

// link adds fd → target to pid, as a process opening a file does.
func (f *fakeProc) link(pid, fd int, target string) {
	f.t.Helper()
	if err := os.Symlink(target, f.path(strconv.Itoa(pid), "fd", strconv.Itoa(fd))); err != nil {
		f.t.Fatal(err)
	}
}

func sock(ino int) string { return "socket:[" + strconv.Itoa(ino) + "]" }

const dockerID = "4f1e1b3c2d5a6978b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f60718293a4b5c6d"
