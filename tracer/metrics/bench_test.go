package metrics

import (
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/twtrace/twtrace/internal/sample"
	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/table"
)

// fullTable fills a table as a busy host does: 50 000 server-side TIME_WAIT
// sockets over 1 000 ports and 50 000 clients towards 10 000 destinations.
func fullTable(b *testing.B, tab *table.Table) {
	lo := netip.MustParseAddr("10.0.0.1")
	var evs []event.Event
	for i := range 50000 {
		peer := netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})
		srv := event.Event{Kind: event.KindState, Time: sample.Start, NetNS: hostNS, Family: event.FamilyIPv4,
			Cookie: uint64(1 + 2*i), Src: netip.AddrPortFrom(lo, uint16(8000+i%1000)), Dst: netip.AddrPortFrom(peer, 40000),
			Old: event.StateFinWait2, New: event.StateClose}
		var tw event.Event
		event.InferTimeWait(&srv, &tw)
		dst := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 2, byte(i % 10000 >> 8), byte(i % 10000)}), 443)
		cli := event.Event{Kind: event.KindState, Time: sample.Start, NetNS: hostNS, Family: event.FamilyIPv4,
			Cookie: uint64(2 + 2*i), Src: netip.AddrPortFrom(lo, 0), Dst: dst, Old: event.StateClose, New: event.StateSynSent}
		est := cli
		est.Src, est.Old, est.New = netip.AddrPortFrom(lo, uint16(30000+i%30000)), event.StateSynSent, event.StateEstablished
		evs = append(evs, srv, tw, cli, est)
	}
	tab.ApplyBatch(evs, nil)
	if n := tab.Len(); n != 100000 {
		b.Fatalf("table holds %d sockets", n)
	}
}

// BenchmarkScrape is one scrape of a full table: the table's aggregates,
// the ranking, the kernel's files, encoding aside.
func BenchmarkScrape(b *testing.B) {
	tab := table.New(table.Config{Derive: true})
	fullTable(b, tab)
	x := New(Config{Table: tab, HostNetNS: hostNS, Now: func() time.Time { return sample.Start }})
	reg := prometheus.NewRegistry()
	reg.MustRegister(x)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := reg.Gather(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkObserve counts a batch of state events.
func BenchmarkObserve(b *testing.B) {
	x := New(Config{Table: table.New(table.Config{})})
	batch := sample.Events()
	b.ReportAllocs()
	for b.Loop() {
		_ = x.Observe(batch)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/event")
}
