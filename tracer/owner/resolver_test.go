package owner

import (
	"fmt"
	"os"
	"reflect"
	"testing"
	"time"
)

// fakeClock is a settable clock for the rate limit.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newTestResolver(t *testing.T, root string, opts ...Option) (*Resolver, *fakeClock) {
	t.Helper()
	r, err := NewResolver(root, opts...)
	if err != nil {
		t.Fatal(err)
	}
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	r.now = clk.now
	r.userName = func(uid uint32) string {
		if uid == 0 {
			return "root"
		}
		return fmt.Sprintf("user%d", uid)
	}
	return r, clk
}

func pids(ps []Process) []uint32 {
	var out []uint32
	for _, p := range ps {
		out = append(out, p.PID)
	}
	return out
}

// standardTree: nginx master and its worker share listener 1000 (inherited
// across fork); the worker also holds a connection dup'ed onto two fds; a
// shell has only a pipe and a file; one process vanished mid-scan (no fd dir).
func standardTree(t *testing.T) *fakeProc {
	f := newFakeProc(t)
	f.add(proc{pid: 100, comm: "nginx", cmdline: "nginx: master process /usr/sbin/nginx\x00-g\x00daemon off;\x00",
		uids: "0\t0\t0\t0", cgroup: "0::/system.slice/docker-" + dockerID + ".scope\n",
		fds: map[int]string{0: "/dev/null", 6: sock(1000)}})
	f.add(proc{pid: 101, comm: "nginx", cmdline: "nginx: worker process\x00",
		uids: "101\t101\t101\t101", cgroup: "0::/system.slice/docker-" + dockerID + ".scope\n",
		fds: map[int]string{6: sock(1000), 7: sock(2000), 9: sock(2000), 3: "anon_inode:[eventpoll]"}})
	f.add(proc{pid: 200, comm: "bash", cmdline: "-bash\x00", uids: "1000\t1000\t1000\t1000",
		cgroup: "0::/user.slice/user-1000.slice/session-3.scope\n",
		fds:    map[int]string{0: "/dev/pts/0", 3: "pipe:[777]"}})
	f.write("300/comm", "gone\n") // exited between readdir and open(fd)
	return f
}

func TestLookupFindsAllHolders(t *testing.T) {
	f := standardTree(t)
	r, _ := newTestResolver(t, f.root)

	got, ok := r.Lookup(1000)
	if !ok || !reflect.DeepEqual(pids(got), []uint32{100, 101}) {
		t.Fatalf("Lookup(1000) = %v, %v; want pids 100, 101", pids(got), ok)
	}
	want := Process{PID: 100, Comm: "nginx", Cmdline: "nginx: master process /usr/sbin/nginx -g daemon off;",
		UID: 0, User: "root", Cgroup: "/system.slice/docker-" + dockerID + ".scope", Container: dockerID}
	if got[0] != want {
		t.Errorf("holder 100:\n got %+v\nwant %+v", got[0], want)
	}
	if got[1].UID != 101 || got[1].Cmdline != "nginx: worker process" {
		t.Errorf("holder 101 = %+v", got[1])
	}

	// dup'ed onto two fds: one holder, not two.
	if got, ok := r.Lookup(2000); !ok || !reflect.DeepEqual(pids(got), []uint32{101}) {
		t.Errorf("Lookup(2000) = %v, %v; want [101]", pids(got), ok)
	}
	// A pipe's inode is not a socket's.
	if got, ok := r.Lookup(777); ok {
		t.Errorf("Lookup(777) found %v; pipes are not sockets", pids(got))
	}

	st, err := r.Stats()
	if err != nil {
		t.Fatal(err)
	}
	wantSt := ScanStats{Procs: 4, Skipped: 1, FDs: 8, Sockets: 4, Kept: 2}
	st.Elapsed = 0
	if st != wantSt {
		t.Errorf("stats = %+v, want %+v", st, wantSt)
	}
}

// Every holder of a shared socket, and every fd of each, as ss -p lists
// them: the master's and the worker's fd 6 on the listener, the worker's
// connection on fds 7 and 9.
func TestLookupHoldersAndFDs(t *testing.T) {
	f := standardTree(t)
	r, _ := newTestResolver(t, f.root)
	got := r.LookupHolders([]uint32{1000, 2000, 777})
	type pf struct {
		pid uint32
		fds []int
	}
	flat := func(hs []Holder) []pf {
		var out []pf
		for _, h := range hs {
			out = append(out, pf{h.PID, h.FDs})
		}
		return out
	}
	if w := []pf{{100, []int{6}}, {101, []int{6}}}; !reflect.DeepEqual(flat(got[1000]), w) {
		t.Errorf("listener 1000: %+v, want %+v", flat(got[1000]), w)
	}
	if w := []pf{{101, []int{7, 9}}}; !reflect.DeepEqual(flat(got[2000]), w) {
		t.Errorf("connection 2000: %+v, want %+v", flat(got[2000]), w)
	}
	if len(got[1000]) == 2 && (got[1000][0].Comm != "nginx" || got[1000][1].UID != 101) {
		t.Errorf("holders' details %+v", got[1000])
	}
	if _, ok := got[777]; ok {
		t.Error("a pipe has holders")
	}
}

func TestLookupRateLimited(t *testing.T) {
	f := standardTree(t)
	r, clk := newTestResolver(t, f.root, MinInterval(time.Second))
	if _, ok := r.Lookup(5000); ok {
		t.Fatal("found a socket that does not exist yet")
	}

	f.link(200, 4, sock(5000)) // the shell opens a socket after the scan
	clk.advance(500 * time.Millisecond)
	if _, ok := r.Lookup(5000); ok {
		t.Error("rescanned within MinInterval")
	}
	clk.advance(500 * time.Millisecond)
	if got, ok := r.Lookup(5000); !ok || got[0].PID != 200 {
		t.Errorf("Lookup(5000) after MinInterval = %v, %v; want [200]", pids(got), ok)
	}

	// A known inode never rescans, however often it is asked about.
	f.link(100, 8, sock(6000))
	clk.advance(time.Hour)
	r.Lookup(1000)
	if st, _ := r.Stats(); st.Kept != 3 {
		t.Errorf("a lookup of a known inode rescanned: %d inodes kept, want 3", st.Kept)
	}
}

func TestSlowScanSpacesRescans(t *testing.T) {
	f := standardTree(t)
	r, clk := newTestResolver(t, f.root, MinInterval(100*time.Millisecond))
	r.Lookup(5000)
	r.stats.Elapsed = time.Second // as on a host with many processes
	f.link(200, 4, sock(5000))
	clk.advance(4 * time.Second)
	if _, ok := r.Lookup(5000); ok {
		t.Error("rescanned 4 s after a 1 s scan; want at most a 20% duty cycle")
	}
	clk.advance(time.Second)
	if _, ok := r.Lookup(5000); !ok {
		t.Error("no rescan 5 s after a 1 s scan")
	}
}

func TestIndexIsBounded(t *testing.T) {
	f := newFakeProc(t)
	fds := map[int]string{}
	for i := 0; i < 10; i++ {
		fds[10+i] = sock(9000 + i)
	}
	f.add(proc{pid: 42, comm: "server", cmdline: "server\x00", uids: "0\t0\t0\t0", fds: fds})
	r, clk := newTestResolver(t, f.root, MaxInodes(3))

	// The inode asked for is kept even once the index is full.
	if _, ok := r.Lookup(9009); !ok {
		t.Fatal("Lookup(9009) not found with MaxInodes(3)")
	}
	st, _ := r.Stats()
	if st.Sockets != 10 || st.Kept > 4 {
		t.Fatalf("stats = %+v: want 10 sockets seen, at most 3+1 kept", st)
	}

	// Every inode is found on demand, each costing at most one rescan.
	clk.advance(time.Second)
	got := r.LookupAll([]uint32{9000, 9001, 9002, 9003, 9004, 9005, 9006, 9007, 9008, 9009})
	if len(got) != 10 {
		t.Errorf("LookupAll found %d of 10 inodes", len(got))
	}
	if st, _ := r.Stats(); st.Kept > 3+10 {
		t.Errorf("kept %d inodes, want at most MaxInodes plus the batch", st.Kept)
	}
}

func TestForgetRescans(t *testing.T) {
	f := standardTree(t)
	r, clk := newTestResolver(t, f.root)
	if got, _ := r.Lookup(1000); len(got) != 2 {
		t.Fatalf("Lookup(1000) = %v", pids(got))
	}
	// The master closes the listener; a cached answer would still say 100.
	if err := os.Remove(f.path("100", "fd", "6")); err != nil {
		t.Fatal(err)
	}
	clk.advance(time.Second)
	if got, _ := r.Lookup(1000); len(got) != 2 {
		t.Fatalf("known inode was rescanned: %v", pids(got))
	}
	r.Forget(1000)
	if got, _ := r.Lookup(1000); !reflect.DeepEqual(pids(got), []uint32{101}) {
		t.Errorf("after Forget: %v, want [101]", pids(got))
	}
}

func TestHolderExitedSinceScan(t *testing.T) {
	f := standardTree(t)
	r, _ := newTestResolver(t, f.root)
	if _, err := r.Refresh(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(f.path("100")); err != nil {
		t.Fatal(err)
	}
	if got, ok := r.Lookup(1000); !ok || !reflect.DeepEqual(pids(got), []uint32{101}) {
		t.Errorf("Lookup(1000) = %v, %v; want only the live holder 101", pids(got), ok)
	}
}

func TestMissingProcRoot(t *testing.T) {
	if _, err := NewResolver(t.TempDir() + "/nope"); err == nil {
		t.Error("NewResolver on a missing directory: want an error")
	}
}

func TestSocketInode(t *testing.T) {
	for _, c := range []struct {
		in   string
		want uint32
		ok   bool
	}{
		{"socket:[12345]", 12345, true},
		{"socket:[4294967295]", 4294967295, true},
		{"socket:[4294967296]", 0, false},
		{"socket:[]", 0, false},
		{"socket:[12a]", 0, false},
		{"socket:[123", 0, false},
		{"pipe:[123]", 0, false},
		{"/tmp/socket:[1]", 0, false},
	} {
		got, ok := socketInode([]byte(c.in))
		if got != c.want || ok != c.ok {
			t.Errorf("socketInode(%q) = %d, %v; want %d, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}
