package session

import (
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/twtrace/twtrace/tracer"
	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/table"
)

// inodeOf returns the inode of a listener's socket, as sock_diag reports it.
func inodeOf(t *testing.T, l net.Listener) uint32 {
	t.Helper()
	rc, err := l.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = syscall.Fstat(int(fd), &st) }); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	return uint32(st.Ino)
}

// A listener made while the session runs is known from the stream, which
// carries no inode, and its owner is known too, so no full dump was ever
// due: the live view's socket detail said "inode -". A dump of the
// listeners alone gives it.
func TestLiveListenerInode(t *testing.T) {
	port := freePort(t)
	r := start(t, Config{Tracer: tracer.Config{Filter: event.Filter{Ports: []uint16{port}}}})
	l := listen(t, port)
	defer l.Close()
	want := inodeOf(t, l)
	deadline := time.Now().Add(4 * time.Second)
	for {
		ls, _ := r.s.Table().Sockets(table.Query{Ports: []uint16{port}, States: []event.State{event.StateListen}}, time.Now())
		if len(ls) == 1 && ls[0].Inode == want {
			if ls[0].Source != "sock_diag+trace" {
				t.Errorf("listener source %q, want the stream's and a dump's", ls[0].Source)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("listener %+v: want inode %d", ls, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
