package tracer

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/twtrace/twtrace/internal/tracertest"
	"github.com/twtrace/twtrace/tracer/event"
)

// Every program set with a ring buffer size other than the default: the
// syscall programs share the state program's ring buffer, and their copy of
// its spec must be resized with it, or they do not load. A real EADDRINUSE,
// and a listen() refused, come through each.
func TestProgramSetsWithRingSize(t *testing.T) {
	eachHooks(t, func(t *testing.T, hooks SyscallHooks) {
		for _, size := range []int{64 << 10, 16 << 20} {
			t.Run(fmt.Sprintf("%dK", size>>10), func(t *testing.T) { testRingSize(t, hooks, size) })
		}
	})
}

func testRingSize(t *testing.T, hooks SyscallHooks, size int) {
	const host = "127.0.0.1"
	ip := netip.MustParseAddr(host)
	port := freePort(t, "tcp4", host)
	r := startTracerWith(t, Config{Filter: event.Filter{Ports: []uint16{port}}, RingSize: size,
		Hooks: hooks, WakeupEvery: 20 * time.Millisecond})
	if r.t.Hooks() != hooks {
		t.Fatalf("bind/connect/listen traced by %v, want %v", r.t.Hooks(), hooks)
	}
	if info, err := r.t.state.Events.Info(); err != nil || info.MaxEntries != uint32(size) {
		t.Fatalf("ring buffer %+v, %v: want %d bytes", info, err, size)
	}
	timeWaitOn(t, host, port)
	fd, errno := bindOnce(ip, port, false)
	defer unix.Close(fd)
	if errno != unix.EADDRINUSE {
		t.Fatalf("bind beside the TIME_WAIT: %v, want EADDRINUSE", errno)
	}
	// Two SO_REUSEADDR sockets both bind; the second listen() is refused.
	a, errA := bindOnce(ip, port, true)
	defer unix.Close(a)
	b, errB := bindOnce(ip, port, true)
	defer unix.Close(b)
	if errA != 0 || errB != 0 || unix.Listen(a, 1) != nil || unix.Listen(b, 1) != unix.EADDRINUSE {
		t.Fatalf("two SO_REUSEADDR sockets: bind %v %v, want both bound and the second listen() refused", errA, errB)
	}
	r.waitFor(t, "the refused listen()", func(evs []event.Event) bool { return count(evs, event.KindListen) > 0 })
	evs := r.finish(t)
	var refused, listens int
	for _, e := range evs {
		switch e.Kind {
		case event.KindBind:
			if e.Errno() == "EADDRINUSE" && int(e.FD) == fd && e.Src == netip.AddrPortFrom(ip, port) {
				refused++
			}
		case event.KindListen:
			if e.Errno() == "EADDRINUSE" && int(e.FD) == b && e.Src.Port() == port {
				listens++
			}
		case event.KindState:
			if !e.UIDKnown || e.UID != uint32(os.Getuid()) {
				t.Errorf("%v->%v: socket uid %d (known %v), want %d", e.Old, e.New, e.UID, e.UIDKnown, os.Getuid())
			}
		case event.KindLost:
			t.Errorf("lost %d events", e.Lost)
		}
	}
	if refused != 1 || listens != 1 {
		t.Errorf("EADDRINUSE bind events %d, refused listen() events %d; want 1 and 1: %+v", refused, listens, evs)
	}
}

// The uid filter runs in the kernel: a socket's transitions pass when its
// owner uid is one of the filter's, a bind() when its task's is. Here root
// leaves a TIME_WAIT on the port and binds beside it, and so does nobody:
// only nobody's events come through, and root's are counted as filtered.
func TestUIDFilterInKernel(t *testing.T) {
	eachHooks(t, func(t *testing.T, hooks SyscallHooks) {
		const host = "127.0.0.1"
		port := freePort(t, "tcp4", host)
		exe := tracertest.PublicCopy(t, os.Args[0])
		r := startTracerWith(t, Config{Filter: event.Filter{Ports: []uint16{port}, UIDs: []uint32{tracertest.NobodyUID}},
			Hooks: hooks, WakeupEvery: 20 * time.Millisecond})
		before, err := r.t.Stats()
		if err != nil {
			t.Fatal(err)
		}
		timeWaitOn(t, host, port) // root's sockets
		fd, errno := bindOnce(netip.MustParseAddr(host), port, false)
		unix.Close(fd)
		if errno != unix.EADDRINUSE {
			t.Fatalf("root's bind: %v, want EADDRINUSE", errno)
		}
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d listen", helperEnv, host, port))
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: tracertest.NobodyUID, Gid: tracertest.NobodyGID}}
		out, err := cmd.Output()
		if err != nil || strings.TrimSpace(string(out)) != "EADDRINUSE" {
			t.Fatalf("nobody's bind, then listen: %q, %v; want EADDRINUSE, then success", out, err)
		}
		r.waitFor(t, "nobody's listener closed", func(evs []event.Event) bool {
			for _, e := range evs {
				if e.Kind == event.KindState && e.Old == event.StateListen && e.New == event.StateClose {
					return true
				}
			}
			return false
		})
		evs := r.finish(t)
		after, err := r.t.Stats()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			if e.Kind != event.KindLost && (e.UID != tracertest.NobodyUID || !e.UIDKnown) {
				t.Errorf("%s event of uid %d (known %v) got through a filter on %d", e.Kind, e.UID, e.UIDKnown, tracertest.NobodyUID)
			}
		}
		binds := filterKind(evs, event.KindBind)
		if len(binds) != 2 || int(binds[0].PID) != cmd.Process.Pid || binds[0].Errno() != "EADDRINUSE" || binds[1].Ret != 0 {
			t.Errorf("bind events %+v: want nobody's EADDRINUSE, then its SO_REUSEADDR bind", binds)
		}
		if states := filterKind(evs, event.KindState); len(states) != 2 {
			t.Errorf("state events %+v: want the two of nobody's listener", states)
		}
		// Root's exchange: 12 transitions on the port, each filtered out.
		if got := after.StateFiltered - before.StateFiltered; got < 12 {
			t.Errorf("the kernel filtered %d transitions, want at least root's 12", got)
		}
	})
}
