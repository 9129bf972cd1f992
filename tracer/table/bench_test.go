package table

import (
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/twtrace/twtrace/tracer/event"
)

// lifeEvents is the 10 transitions (and the inferred TIME_WAIT) of one
// loopback connection whose server closes first, as the kernel reports them.
func lifeEvents(n int, base time.Time) []event.Event {
	evs := make([]event.Event, 0, n*11)
	srv := netip.MustParseAddrPort("127.0.0.1:8080")
	for i := range n {
		cli := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(1024+i%60000))
		c, s := uint64(2*i+1), uint64(2*i+2)
		t := base.Add(time.Duration(i) * time.Microsecond)
		mk := func(cookie uint64, src, dst netip.AddrPort, old, new event.State) event.Event {
			return event.Event{Kind: event.KindState, Time: t, Cookie: cookie, NetNS: ns, Family: event.FamilyIPv4,
				Src: src, Dst: dst, Old: old, New: new, Owner: 100, OwnerComm: event.MakeComm("bench"),
				OldKnown: old != event.StateClose, OldDur: time.Microsecond}
		}
		evs = append(evs,
			mk(c, netip.AddrPortFrom(cli.Addr(), 0), srv, event.StateClose, event.StateSynSent),
			mk(s, srv, cli, event.StateListen, event.StateSynRecv),
			mk(s, srv, cli, event.StateSynRecv, event.StateEstablished),
			mk(c, cli, srv, event.StateSynSent, event.StateEstablished),
			mk(s, srv, cli, event.StateEstablished, event.StateFinWait1),
			mk(c, cli, srv, event.StateEstablished, event.StateCloseWait),
			mk(s, srv, cli, event.StateFinWait1, event.StateFinWait2),
			mk(s, srv, cli, event.StateFinWait2, event.StateClose),
		)
		var tw event.Event
		event.InferTimeWait(&evs[len(evs)-1], &tw)
		evs = append(evs, tw,
			mk(c, cli, srv, event.StateCloseWait, event.StateLastAck),
			mk(c, cli, srv, event.StateLastAck, event.StateClose),
		)
	}
	return evs
}

// BenchmarkApply measures the table update per event on a steady churn: the
// table holds up to 100 000 sockets (TIME_WAIT mostly) and evicts the rest.
func BenchmarkApply(b *testing.B) {
	const conns = 20_000
	evs := lifeEvents(conns, t0)
	tab := New(Config{Derive: true, MaxSockets: 100_000})
	var out []event.Event
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for b.Loop() {
		// Batches of 512, as the tracer delivers them; time moves on so
		// that new connections are new sockets.
		j := n % (len(evs) / 512)
		batch := evs[j*512 : (j+1)*512]
		if j == 0 {
			shift := time.Duration(n) * time.Millisecond
			for i := range evs {
				evs[i].Time = evs[i].Time.Add(shift)
				evs[i].Cookie += uint64(len(evs))
			}
		}
		out = tab.ApplyBatch(batch, out[:0])
		n++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*512), "ns/event")
}

// timeWaitTable builds a table of n TIME_WAIT sockets from a snapshot, and
// the snapshot that confirms them all.
func timeWaitTable(n int) (*Table, *Snapshot) {
	socks := make([]KernelSocket, n)
	for i := range socks {
		a := netip.AddrFrom4([4]byte{127, 0, byte(i >> 16), byte(i >> 8)})
		socks[i] = KernelSocket{
			Cookie: uint64(i + 1), Family: event.FamilyIPv4, State: event.StateTimeWait,
			Src: netip.AddrPortFrom(a, 80), Dst: netip.AddrPortFrom(a, uint16(i)), Expires: 30 * time.Second,
		}
	}
	tab := New(Config{Derive: true})
	tab.Load(&Snapshot{NetNS: ns, Start: t0, End: t0, Complete: true, Initial: true, Sockets: socks}, nil)
	return tab, &Snapshot{NetNS: ns, Start: t0.Add(time.Second), End: t0.Add(time.Second), Complete: true, TimeWaitOnly: true, Sockets: socks}
}

// BenchmarkReconcile100k: one reconciliation round against 100 000 TIME_WAIT
// sockets (the table's part; the sock_diag dump is measured in sockdiag).
func BenchmarkReconcile100k(b *testing.B) {
	tab, snap := timeWaitTable(100_000)
	var out []event.Event
	b.ReportAllocs()
	for b.Loop() {
		out = tab.Load(snap, out[:0])
	}
	if len(out) != 0 || tab.Stats().TimeWait != 100_000 {
		b.Fatalf("derived %d, %d TIME_WAIT", len(out), tab.Stats().TimeWait)
	}
}

// BenchmarkTick100k: the once-a-second expiry and linger pass.
func BenchmarkTick100k(b *testing.B) {
	tab, _ := timeWaitTable(100_000)
	var out []event.Event
	b.ReportAllocs()
	for b.Loop() {
		out = tab.Tick(t0.Add(time.Second), out[:0])
	}
}

// TestMemory100k reports the heap a table of 100 000 TIME_WAIT sockets holds
// and fails above a budget that keeps twtrace under 64 MiB resident.
func TestMemory100k(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a large table")
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	tab, _ := timeWaitTable(100_000)
	runtime.GC()
	runtime.ReadMemStats(&after)
	heap := float64(after.HeapAlloc-before.HeapAlloc) / (1 << 20)
	t.Logf("100 000 TIME_WAIT sockets: %.1f MiB of heap, %.0f bytes per socket", heap, heap*(1<<20)/100_000)
	if heap > 40 {
		t.Errorf("%.1f MiB for 100 000 sockets: over the 40 MiB budget", heap)
	}
	runtime.KeepAlive(tab)
}
