package tracer

import (
	"bytes"
	"encoding/binary"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twtrace/twtrace/tracer/event"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/twtrace/twtrace/internal/tracertest"
)

func TestReadReuseRecords(t *testing.T) {
	var b bytes.Buffer
	for _, rec := range []sockiterTwSockReuse{
		{Cookie: 7, State: uint8(event.StateListen), Flags: flagReuseAddr},
		{Cookie: 8, State: uint8(event.StateTimeWait), Flags: flagReuseAddr | flagReusePort},
		{Cookie: 9, State: uint8(event.StateEstablished)},
	} {
		if err := binary.Write(&b, binary.LittleEndian, &rec); err != nil {
			t.Fatal(err)
		}
	}
	got := map[uint64]event.Reuse{}
	whole := b.Bytes()
	if err := readReuse(bytes.NewReader(whole), func(c uint64, r event.Reuse) { got[c] = r }); err != nil {
		t.Fatal(err)
	}
	want := map[uint64]event.Reuse{7: event.ReuseKnown | event.ReuseAddr, 8: event.ReuseKnown | event.ReuseAddr | event.ReusePort, 9: event.ReuseKnown}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for c, r := range want {
		if got[c] != r {
			t.Errorf("cookie %d: %v, want %v", c, got[c], r)
		}
	}
	err := readReuse(bytes.NewReader(whole[:len(whole)-3]), func(uint64, event.Reuse) {})
	if err == nil || !strings.Contains(err.Error(), "cut short") {
		t.Errorf("truncated: %v, want a record cut short", err)
	}
}

// listenWith opens a listener on 127.0.0.1 with the given options and
// returns its fd, port and cookie.
func listenWith(t *testing.T, reuseaddr, reuseport bool) (fd int, port int, cookie uint64) {
	t.Helper()
	fd, port, cookie, err := listenOpts(reuseaddr, reuseport)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd, port, cookie
}

func listenOpts(reuseaddr, reuseport bool) (fd int, port int, cookie uint64, err error) {
	fd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, 0, 0, err
	}
	fail := func(err error) (int, int, uint64, error) {
		unix.Close(fd)
		return -1, 0, 0, err
	}
	for opt, on := range map[int]bool{unix.SO_REUSEADDR: reuseaddr, unix.SO_REUSEPORT: reuseport} {
		if on {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, opt, 1); err != nil {
				return fail(err)
			}
		}
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return fail(err)
	}
	if err := unix.Listen(fd, 8); err != nil {
		return fail(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return fail(err)
	}
	if cookie, err = unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_COOKIE); err != nil {
		return fail(err)
	}
	return fd, sa.(*unix.SockaddrInet4).Port, cookie, nil
}

func readAllReuse(t *testing.T, r *ReuseReader, netnsFD int) map[uint64]event.Reuse {
	t.Helper()
	got := map[uint64]event.Reuse{}
	if err := r.Read(netnsFD, func(c uint64, re event.Reuse) {
		if _, dup := got[c]; dup {
			t.Errorf("cookie %d reported twice", c)
		}
		got[c] = re
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

// TestReuseReaderReadsOptions: the iterator reports each listener's options,
// and a TIME_WAIT socket carries those of the socket it came from (an
// accepted socket inherits its listener's).
func TestReuseReaderReadsOptions(t *testing.T) {
	tracertest.Require(t)
	r, err := OpenReuseReader()
	if err != nil {
		tracertest.Unavailable(t, err)
	}
	defer r.Close()

	_, _, plain := listenWith(t, false, false)
	_, _, addr := listenWith(t, true, false)
	_, _, port := listenWith(t, false, true)
	_, _, both := listenWith(t, true, true)

	// A TIME_WAIT from an accepted socket of a SO_REUSEADDR listener.
	lfd, lport, _ := listenWith(t, true, false)
	c, err := net.Dial("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(lport)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	afd, _, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	accepted, err := unix.GetsockoptUint64(afd, unix.SOL_SOCKET, unix.SO_COOKIE)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(afd) // the server closes first: its side goes to TIME_WAIT
	buf := make([]byte, 1)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	c.Read(buf) // EOF once the FIN arrived
	c.Close()

	want := map[uint64]event.Reuse{
		plain:    event.ReuseKnown,
		addr:     event.ReuseKnown | event.ReuseAddr,
		port:     event.ReuseKnown | event.ReusePort,
		both:     event.ReuseKnown | event.ReuseAddr | event.ReusePort,
		accepted: event.ReuseKnown | event.ReuseAddr,
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := readAllReuse(t, r, -1)
		bad := ""
		for c, w := range want {
			if got[c] != w {
				bad += " cookie " + strconv.FormatUint(c, 10) + ": " + got[c].String() + ", want " + w.String() + ";"
			}
		}
		if bad == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("iterator:%s", bad)
		}
		time.Sleep(50 * time.Millisecond) // the FIN exchange may still be in flight
	}
}

// TestReuseReaderNamespaces: the iterator walks one namespace, the one asked for.
func TestReuseReaderNamespaces(t *testing.T) {
	ns := tracertest.NewNetNS(t)
	r, err := OpenReuseReader()
	if err != nil {
		tracertest.Unavailable(t, err)
	}
	defer r.Close()
	_, _, host := listenWith(t, true, false)
	var (
		insideFD int
		inside   uint64
	)
	if err := ns.Do(func() (err error) {
		insideFD, _, inside, err = listenOpts(false, true)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(insideFD)
	got := readAllReuse(t, r, ns.FD())
	if got[inside] != event.ReuseKnown|event.ReusePort {
		t.Errorf("namespace's listener: %v, want port", got[inside])
	}
	if _, ok := got[host]; ok || len(got) != 1 {
		t.Errorf("namespace read saw %d sockets (host listener among them: %v), want only its own", len(got), ok)
	}
	if _, ok := readAllReuse(t, r, -1)[inside]; ok {
		t.Error("host read saw the namespace's listener")
	}
}

// TestReuseReaderCloseUnloads: nothing of the iterator stays in the kernel.
func TestReuseReaderCloseUnloads(t *testing.T) {
	tracertest.Require(t)
	r, err := OpenReuseReader()
	if err != nil {
		tracertest.Unavailable(t, err)
	}
	pinfo, err := r.objs.SockReuse.Info()
	if err != nil {
		t.Fatal(err)
	}
	progID, _ := pinfo.ID()
	linfo, err := r.it.Info()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second) // programs are freed after an RCU grace period
	for {
		p, perr := ebpf.NewProgramFromID(progID)
		l, lerr := link.NewFromID(linfo.ID)
		if perr != nil && lerr != nil {
			return
		}
		if perr == nil {
			p.Close()
		}
		if lerr == nil {
			l.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("after Close: program %d alive %v, link %d alive %v", progID, perr == nil, linfo.ID, lerr == nil)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
