package tracer

import (
	"math/bits"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/metrics"
)

// workload runs a scripted mix on port: server-closes-first exchanges over
// IPv4 and IPv6, one where the client closes first, one reset, and a bind
// refused by the TIME_WAITs.
func workload(t *testing.T, port uint16) {
	t.Helper()
	for range 3 {
		exchange(t, "tcp4", "127.0.0.1", port)
	}
	exchange(t, "tcp6", "::1", port)
	// The client closes first, then the server.
	l := listenTCP(t, "tcp4", "127.0.0.1", port)
	c, err := net.Dial("tcp4", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := a.Read(make([]byte, 1)); err == nil {
		t.Fatal("the server read data from a closed client")
	}
	a.Close()
	// A reset: SO_LINGER 0 on the client.
	c, err = net.Dial("tcp4", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if a, err = l.Accept(); err != nil {
		t.Fatal(err)
	}
	_ = c.(*net.TCPConn).SetLinger(0)
	c.Close()
	_, _ = a.Read(make([]byte, 1))
	a.Close()
	l.Close()
	fd, errno := bindOnce(netip.MustParseAddr("127.0.0.1"), port, false)
	if fd >= 0 {
		unix.Close(fd)
	}
	if errno != unix.EADDRINUSE {
		t.Fatalf("bind beside the TIME_WAITs: %v, want EADDRINUSE", errno)
	}
}

// traceWorkload runs the workload under a tracer on a fresh port and
// returns the tracer, stopped, and everything it delivered.
func traceWorkload(t *testing.T, cfg Config) (*run, []event.Event) {
	t.Helper()
	port := freePort(t, "tcp4", "127.0.0.1")
	cfg.Filter, cfg.WakeupEvery = event.Filter{Ports: []uint16{port}}, 20*time.Millisecond
	r := startTracerWith(t, cfg)
	workload(t, port)
	r.waitFor(t, "the refused bind", func(evs []event.Event) bool { return count(evs, event.KindBind) >= 1 })
	return r, r.finish(t)
}

// fromStream counts the stream's transitions and times as the kernel
// aggregates them.
func fromStream(evs []event.Event) *Aggregates {
	a := &Aggregates{}
	for _, e := range evs {
		if e.Kind != event.KindState {
			continue
		}
		a.Transitions[e.Old][e.New]++
		if e.OldKnown {
			d := &a.Durations[e.Old]
			ns := uint64(e.OldDur)
			d.Slots[metrics.Log2Slot(ns)]++
			var carry uint64
			d.SumLo, carry = bits.Add64(d.SumLo, ns, 0)
			d.SumHi += carry
		}
	}
	return a
}

// With aggregation on and every event still streamed, the kernel's counts
// are exactly the stream's: every transition, every slot, every nanosecond.
func TestAggregatesAreTheStream(t *testing.T) {
	r, evs := traceWorkload(t, Config{aggregateAll: true})
	if n := count(evs, event.KindLost); n != 0 {
		t.Fatalf("%d lost records", n)
	}
	got, err := r.t.Aggregates()
	if err != nil {
		t.Fatal(err)
	}
	want := fromStream(evs)
	var total, timed uint64
	for old := range AggStates {
		for to := range AggStates {
			total += want.Transitions[old][to]
			if got.Transitions[old][to] != want.Transitions[old][to] {
				t.Errorf("%v->%v: the kernel counted %d, the stream shows %d", event.State(old), event.State(to),
					got.Transitions[old][to], want.Transitions[old][to])
			}
		}
		if got.Durations[old] != want.Durations[old] {
			t.Errorf("time in %v: the kernel's %+v, the stream's %+v", event.State(old), got.Durations[old], want.Durations[old])
		}
		for _, n := range want.Durations[old].Slots {
			timed += n
		}
	}
	// 5 exchanges of 12 transitions (listener, client, accepted), the reset's
	// 10 at least: the workload ran.
	if total < 60 || timed < 30 {
		t.Errorf("the stream shows %d transitions, %d timed: the workload did not run", total, timed)
	}
	// Four servers and one client closed first.
	if want.Transitions[event.StateFinWait2][event.StateClose] != 5 {
		t.Errorf("FIN_WAIT2->CLOSE %d, want 5: the 4 servers and the client that closed first", want.Transitions[event.StateFinWait2][event.StateClose])
	}
}

// With aggregation alone, the kernel still counts everything, and the ring
// buffer carries only what the socket table needs.
func TestAggregateStreamsOnlyWhatTheTableNeeds(t *testing.T) {
	r, evs := traceWorkload(t, Config{Aggregate: true})
	var streamed uint64
	for _, e := range evs {
		switch e.Kind {
		case event.KindState:
			streamed++
			tw := e.New == event.StateClose && (e.Old == event.StateFinWait2 || e.Old == event.StateClosing)
			listener := (e.Old == event.StateClose && e.New == event.StateListen) ||
				(e.Old == event.StateListen && e.New == event.StateClose)
			connect := e.Old == event.StateClose && e.New == event.StateSynSent
			if !tw && !listener && !connect {
				t.Errorf("%v->%v reached the ring buffer", e.Old, e.New)
			}
		case event.KindBind:
			if e.Ret >= 0 {
				t.Errorf("a successful bind() reached the ring buffer: %+v", e)
			}
		case event.KindLost:
			t.Errorf("lost %d", e.Lost)
		}
	}
	agg, err := r.t.Aggregates()
	if err != nil {
		t.Fatal(err)
	}
	var counted uint64
	for _, row := range agg.Transitions {
		for _, n := range row {
			counted += n
		}
	}
	// Five listeners' CLOSE->LISTEN and LISTEN->CLOSE, five TIME_WAIT enters
	// (four servers, one client), six connect()s.
	if streamed != 5*2+5+6 || agg.Transitions[event.StateFinWait2][event.StateClose] != 5 {
		t.Errorf("%d transitions streamed, want 21; FIN_WAIT2->CLOSE counted %d, want 5",
			streamed, agg.Transitions[event.StateFinWait2][event.StateClose])
	}
	ks, err := r.t.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if ks.Aggregated != counted-streamed || ks.StateEmitted != streamed {
		t.Errorf("kernel counters: %d aggregated only and %d emitted, want %d and %d", ks.Aggregated, ks.StateEmitted,
			counted-streamed, streamed)
	}
}

// Loaded as trace and record load it, the programs aggregate nothing.
func TestNoAggregatesByDefault(t *testing.T) {
	port := freePort(t, "tcp4", "127.0.0.1")
	r := startTracer(t, event.Filter{Ports: []uint16{port}})
	exchange(t, "tcp4", "127.0.0.1", port)
	r.waitFor(t, "the exchange", func(evs []event.Event) bool { return count(evs, event.KindState) >= 12 })
	r.finish(t)
	agg, err := r.t.Aggregates()
	if err != nil {
		t.Fatal(err)
	}
	if *agg != (Aggregates{}) {
		t.Errorf("aggregates without Config.Aggregate: %+v", agg.Transitions)
	}
}
