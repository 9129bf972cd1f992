package metrics

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/twtrace/twtrace/internal/sample"
	"github.com/twtrace/twtrace/tracer/event"
)

// Each namespace's range is read at most once a minute, and a scrape reads
// at most freshRangesPerScrape of them.
func TestPortRangePerNamespace(t *testing.T) {
	now := sample.Start
	calls := map[uint32]int{}
	x, tab, reg := newTest(t, Config{Label: LabelNetNS, MaxLabelValues: 100, Now: func() time.Time { return now },
		PortRange: func(ns uint32) (int, bool) { calls[ns]++; return int(ns) * 10, ns != 7 }})
	var evs []event.Event
	for ns := uint32(1); ns <= 40; ns++ {
		cli := event.Event{Kind: event.KindState, Time: now, NetNS: ns, Family: event.FamilyIPv4, Cookie: uint64(ns),
			Src: netip.MustParseAddrPort("10.1.1.1:0"), Dst: netip.MustParseAddrPort("10.2.2.2:80"),
			Old: event.StateClose, New: event.StateSynSent}
		est := cli
		est.Src, est.Old, est.New = netip.MustParseAddrPort("10.1.1.1:40000"), event.StateSynSent, event.StateEstablished
		evs = append(evs, cli, est)
	}
	feed(t, x, tab, evs)
	m := gather(t, reg)
	if len(calls) != freshRangesPerScrape {
		t.Errorf("first scrape read %d ranges, want %d", len(calls), freshRangesPerScrape)
	}
	gather(t, reg)
	if len(calls) != 41 { // the 40 and the host's
		t.Errorf("second scrape: %d ranges read in all, want 41", len(calls))
	}
	for ns, n := range calls {
		if n != 1 {
			t.Errorf("namespace %d read %d times within a minute", ns, n)
		}
	}
	m = gather(t, reg)
	if got := m["twtrace_ephemeral_port_use_ratio"]["destination=10.2.2.2:80,netns=5"]; got != 1.0/50 {
		t.Errorf("ratio in namespace 5 = %v, want 1/50", got)
	}
	if got := m["twtrace_ephemeral_port_range_size"]["netns=5"]; got != 50 {
		t.Errorf("range of namespace 5 = %v", got)
	}
	if _, ok := m["twtrace_ephemeral_port_use_ratio"]["destination=10.2.2.2:80,netns=7"]; ok {
		t.Error("a ratio for the namespace whose range is unknown")
	}
	if m["twtrace_collect_errors_total"]["source=port_range"] != 1 {
		t.Errorf("errors %v, want the one unreadable range", m["twtrace_collect_errors_total"])
	}
	now = now.Add(2 * time.Minute) // stale: read again, 32 a scrape
	gather(t, reg)
	gather(t, reg)
	for ns, n := range calls {
		if n != 2 {
			t.Errorf("namespace %d read %d times in two minutes, want 2", ns, n)
		}
	}
}

func TestTopK(t *testing.T) {
	items := []int{5, 1, 9, 3, 7, 9, 2, 8}
	for k := range len(items) + 2 {
		all := slices.Clone(items)
		top := topK(all, k, func(a, b int) int { return b - a })
		want := slices.Sorted(slices.Values(items))
		slices.Reverse(want)
		if k < len(want) {
			want = want[:k]
		}
		// The rest follows the top in the same slice: every item once.
		if !slices.Equal(top, want) || !slices.Equal(all[:len(top)], top) ||
			!slices.Equal(slices.Sorted(slices.Values(all)), slices.Sorted(slices.Values(items))) {
			t.Errorf("k=%d: top %v, items now %v", k, top, all)
		}
	}
}
