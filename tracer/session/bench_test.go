package session

import (
	"io"
	"net/netip"
	"testing"
	"time"

	"github.com/twtrace/twtrace/tracer/event"

	"github.com/twtrace/twtrace/tracer/stream"
	"github.com/twtrace/twtrace/tracer/table"
)

// churnEvents are the events of n loopback connections, client closing
// first, as the reader hands them over (transitions and inferred enters).
func churnEvents(n int, base time.Time, cookie0 uint64) []event.Event {
	evs := make([]event.Event, 0, n*11)
	srv := netip.MustParseAddrPort("127.0.0.2:10000")
	lo := netip.MustParseAddr("127.0.0.1")
	for i := range n {
		cli := netip.AddrPortFrom(lo, uint16(1024+i%60000))
		c, s := cookie0+uint64(2*i), cookie0+uint64(2*i+1)
		t := base.Add(time.Duration(i) * 20 * time.Microsecond)
		mk := func(ck uint64, src, dst netip.AddrPort, old, new event.State) event.Event {
			return event.Event{Kind: event.KindState, Time: t, Cookie: ck, NetNS: 4026532000, Family: event.FamilyIPv4,
				PID: 100, Comm: event.MakeComm("twchurn"), Src: src, Dst: dst, Old: old, New: new,
				Owner: 100, OwnerComm: event.MakeComm("twchurn"), OldKnown: old != event.StateClose, OldDur: 3 * time.Microsecond}
		}
		evs = append(evs,
			mk(c, netip.AddrPortFrom(lo, 0), srv, event.StateClose, event.StateSynSent),
			mk(c, cli, srv, event.StateSynSent, event.StateEstablished),
			mk(s, srv, cli, event.StateListen, event.StateSynRecv),
			mk(s, srv, cli, event.StateSynRecv, event.StateEstablished),
			mk(c, cli, srv, event.StateEstablished, event.StateFinWait1),
			mk(s, srv, cli, event.StateEstablished, event.StateCloseWait),
			mk(s, srv, cli, event.StateCloseWait, event.StateLastAck),
			mk(c, cli, srv, event.StateFinWait1, event.StateFinWait2),
			mk(c, cli, srv, event.StateFinWait2, event.StateClose),
		)
		var tw event.Event
		event.InferTimeWait(&evs[len(evs)-1], &tw)
		evs = append(evs, tw, mk(s, srv, cli, event.StateLastAck, event.StateClose))
	}
	return evs
}

// BenchmarkPipeline is what twtrace does per event in user space after the
// reader decoded it, for `trace --json`: the table, the derived events, the
// filter, the JSON encoding (to io.Discard). The table is at its default
// cap, full of TIME_WAIT, as under sustained churn.
func BenchmarkPipeline(b *testing.B) {
	s := &Session{
		tab:     table.New(table.Config{Derive: true}),
		derived: make(chan []event.Event, 1),
		hints:   make(chan nsHint, 64),
		known:   map[uint32]bool{},
	}
	js := stream.NewJSON(io.Discard)
	st := &stage{s: s, sink: js.Write, lastTick: time.Now()}
	const conns = 8192
	base := time.Now()
	var cookie uint64 = 1
	// Fill the table to its cap first.
	for s.tab.Len() < table.DefaultMaxSockets {
		cookie += 2 * conns
		base = base.Add(time.Second)
		fill := churnEvents(conns, base, cookie)
		for i := 0; i < len(fill); i += 512 {
			_ = st.handle(fill[i:min(i+512, len(fill))])
		}
	}
	batches := make([][]event.Event, 8)
	for k := range batches {
		cookie += 2 * conns
		batches[k] = churnEvents(conns, base.Add(time.Duration(k)*time.Second), cookie)
	}
	b.ReportAllocs()
	b.ResetTimer()
	events := 0
	for n := 0; b.Loop(); n++ {
		bt := batches[n%len(batches)]
		off := (n / len(batches) * 512) % len(bt)
		chunk := bt[off:min(off+512, len(bt))]
		if err := st.handle(chunk); err != nil {
			b.Fatal(err)
		}
		events += len(chunk)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(events), "ns/event")
}
