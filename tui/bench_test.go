package tui

import (
	"net/netip"
	"testing"
	"time"

	"github.com/twtrace/twtrace/tracer/event"

	tea "charm.land/bubbletea/v2"

	"github.com/twtrace/twtrace/tracer/table"
)

// bigTable is a busy server and client host: 100 000 sockets, mostly
// TIME_WAIT. 70 000 TIME_WAIT on the server port 8080 (it closes first),
// 20 000 TIME_WAIT from ephemeral ports towards a database (the port
// exhaustion case), 9 000 established connections, 101 listeners and
// their owners; then a stream of transitions so that ports have rates.
func bigTable(tb testing.TB, now time.Time) *table.Table {
	tb.Helper()
	tab := table.New(table.Config{MaxSockets: 1 << 17})
	srv := netip.MustParseAddr("10.0.0.1")
	db := netip.AddrPortFrom(netip.MustParseAddr("10.9.0.5"), 5432)
	client := func(i int) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), uint16(40000+i%20000))
	}
	snap := table.Snapshot{NetNS: sampleNetNS, Start: now, End: now, Complete: true, Initial: true}
	add := func(st event.State, src, dst netip.AddrPort, left time.Duration) {
		snap.Sockets = append(snap.Sockets, table.KernelSocket{
			Cookie: uint64(len(snap.Sockets) + 1), Family: event.FamilyIPv4, State: st,
			Src: src, Dst: dst, Expires: left, Inode: uint32(len(snap.Sockets) + 1000),
		})
	}
	add(event.StateListen, netip.AddrPortFrom(srv, 8080), netip.AddrPortFrom(netip.IPv4Unspecified(), 0), 0)
	for i := range 70000 {
		add(event.StateTimeWait, netip.AddrPortFrom(srv, 8080), client(i), time.Duration(i%60000)*time.Millisecond)
	}
	for i := range 20000 {
		add(event.StateTimeWait, netip.AddrPortFrom(srv, uint16(32768+i)), db, time.Duration(i%60000)*time.Millisecond)
	}
	for i := range 9000 {
		add(event.StateEstablished, netip.AddrPortFrom(srv, 8080), client(70000+i), 0)
	}
	for i := range 1000 {
		if i < 100 {
			add(event.StateListen, netip.AddrPortFrom(srv, uint16(9000+i)), netip.AddrPortFrom(netip.IPv4Unspecified(), 0), 0)
		} else {
			add(event.StateCloseWait, netip.AddrPortFrom(srv, uint16(9000+i%100)), client(i), 0)
		}
	}
	tab.Load(&snap, nil)
	tab.ResolveOwners(func(inode uint32) (uint32, event.Comm, bool) {
		return 4000 + inode%7, event.MakeComm("worker"), true
	})
	tab.ApplyBatch(churn(5000, now), nil)
	if n := tab.Len(); n < 100000 {
		tb.Fatalf("table holds %d sockets", n)
	}
	return tab
}

// churn is n events of short connections to port 8080: each opens,
// establishes and closes (server first), as a load test would make them.
func churn(n int, now time.Time) []event.Event {
	evs := make([]event.Event, 0, n)
	srv := netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), 8080)
	steps := []event.State{event.StateSynRecv, event.StateEstablished, event.StateFinWait1, event.StateFinWait2, event.StateClose}
	for i := 0; len(evs) < n; i++ {
		cli := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 3, byte(i >> 8), byte(i)}), uint16(20000+i%30000))
		old := event.StateListen
		for _, st := range steps {
			evs = append(evs, event.Event{
				Kind: event.KindState, Time: now, PID: 4001, Comm: event.MakeComm("worker"),
				NetNS: sampleNetNS, Family: event.FamilyIPv4, Src: srv, Dst: cli, Cookie: 1<<40 + uint64(i),
				Old: old, New: st, Owner: 4001, OwnerComm: event.MakeComm("worker"),
			})
			old = st
		}
	}
	return evs[:n]
}

func bigModel(b *testing.B, view viewID) Model {
	b.Helper()
	now := time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC)
	tab := bigTable(b, now)
	m := NewModel(tab, Options{Clock: func() time.Time { return now }, Location: time.UTC})
	m = step(m, tea.WindowSizeMsg{Width: 100, Height: 30})
	m = step(m, EventsMsg(churn(DefaultLogSize, now)))
	m = step(m, keyMsg(string(rune('1'+view))))
	return m.Refresh()
}

// BenchmarkView is the cost of one frame with 100 000 sockets in the
// table, per view: what the UI pays at every tick and key press.
func BenchmarkView(b *testing.B) {
	for v := range numViews {
		b.Run(viewNames[v], func(b *testing.B) {
			m := bigModel(b, v)
			b.ReportAllocs()
			for b.Loop() {
				_ = m.View()
			}
		})
	}
}

// BenchmarkRefresh is the cost of one query of the table for a view, with
// 100 000 sockets: it runs off the UI goroutine, at most every 8x its cost
// (costFactor).
func BenchmarkRefresh(b *testing.B) {
	for v := range numViews {
		b.Run(viewNames[v], func(b *testing.B) {
			m := bigModel(b, v)
			b.ReportAllocs()
			for b.Loop() {
				m = m.Refresh()
			}
		})
	}
}

// BenchmarkUpdateEvents drains a 5 000-event batch into the model.
func BenchmarkUpdateEvents(b *testing.B) {
	m := NewModel(table.New(table.Config{}), Options{})
	m = step(m, tea.WindowSizeMsg{Width: 100, Height: 30})
	batch := churn(5000, time.Now())
	b.ReportAllocs()
	for b.Loop() {
		m = step(m, EventsMsg(batch))
	}
}

// BenchmarkTick is one tick with 5 000 events waiting: the feed's copy
// into the pending buffer, the drain, the log, the header's counters.
func BenchmarkTick(b *testing.B) {
	m := NewModel(table.New(table.Config{}), Options{})
	m.pending = newPending(DefaultPendingSize)
	m = step(m, tea.WindowSizeMsg{Width: 100, Height: 30})
	batch := churn(5000, time.Now())
	b.ReportAllocs()
	for b.Loop() {
		m.pending.add(batch)
		m.onTick()
	}
}
