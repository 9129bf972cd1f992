package metrics

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/twtrace/twtrace/internal/sample"
	"github.com/twtrace/twtrace/tracer/event"
)

// Each namespace's usable range is its own; a namespace whose range is
// unknown has no ratio, and only the host's unknown is a collect error.
func TestPortRangePerNamespace(t *testing.T) {
	now := sample.Start
	known := true
	x, tab, reg := newTest(t, Config{Label: LabelNetNS, MaxLabelValues: 100, Now: func() time.Time { return now },
		PortRange: func(ns uint32) (int, bool) {
			if ns == hostNS {
				return 28232, known
			}
			return int(ns) * 10, ns != 7
		}})
	var evs []event.Event
	for ns := uint32(1); ns <= 10; ns++ {
		cli := event.Event{Kind: event.KindState, Time: now, NetNS: ns, Family: event.FamilyIPv4, Cookie: uint64(ns),
			Src: netip.MustParseAddrPort("10.1.1.1:0"), Dst: netip.MustParseAddrPort("10.2.2.2:80"),
			Old: event.StateClose, New: event.StateSynSent}
		est := cli
		est.Src, est.Old, est.New = netip.MustParseAddrPort("10.1.1.1:40000"), event.StateSynSent, event.StateEstablished
		evs = append(evs, cli, est)
	}
	feed(t, x, tab, evs)
	m := gather(t, reg)
	if got := m["twtrace_ephemeral_port_use_ratio"]["destination=10.2.2.2:80,netns=5"]; got != 1.0/50 {
		t.Errorf("ratio in namespace 5 = %v, want 1/50", got)
	}
	if got := m["twtrace_ephemeral_port_range_size"]["netns=5"]; got != 50 {
		t.Errorf("range of namespace 5 = %v", got)
	}
	if _, ok := m["twtrace_ephemeral_port_use_ratio"]["destination=10.2.2.2:80,netns=7"]; ok {
		t.Error("a ratio for the namespace whose range is unknown")
	}
	if m["twtrace_ephemeral_ports_in_use"]["destination=10.2.2.2:80,netns=7"] != 1 || m["twtrace_collect_errors_total"] != nil {
		t.Errorf("in use %v, errors %v: a namespace's unknown range is no error", m["twtrace_ephemeral_ports_in_use"], m["twtrace_collect_errors_total"])
	}
	known = false
	if m = gather(t, reg); m["twtrace_collect_errors_total"]["source=port_range"] != 1 {
		t.Errorf("errors %v, want the host's unreadable range", m["twtrace_collect_errors_total"])
	}
}

// Without --by-netns, a destination reached from several namespaces is the
// one where it takes the largest share of the range.
func TestDestinationFromSeveralNamespaces(t *testing.T) {
	x, tab, reg := newTest(t, Config{PortRange: func(ns uint32) (int, bool) { return int(ns) * 100, true }})
	var evs []event.Event
	cookie := uint64(0)
	for _, c := range []struct {
		ns uint32
		n  int
	}{{1, 3}, {2, 4}} { // 3 of 100 ports in namespace 1, 4 of 200 in namespace 2
		for i := range c.n {
			cookie++
			evs = append(evs, event.Event{Kind: event.KindState, Time: sample.Start, NetNS: c.ns, Family: event.FamilyIPv4,
				Cookie: cookie, Src: netip.AddrPortFrom(netip.MustParseAddr("10.1.1.1"), 0),
				Dst: netip.MustParseAddrPort("10.2.2.2:80"), Old: event.StateClose, New: event.StateSynSent},
				event.Event{Kind: event.KindState, Time: sample.Start, NetNS: c.ns, Family: event.FamilyIPv4,
					Cookie: cookie, Src: netip.AddrPortFrom(netip.MustParseAddr("10.1.1.1"), uint16(40000+i)),
					Dst: netip.MustParseAddrPort("10.2.2.2:80"), Old: event.StateSynSent, New: event.StateEstablished})
		}
	}
	feed(t, x, tab, evs)
	m := gather(t, reg)
	if m["twtrace_ephemeral_port_use_ratio"]["destination=10.2.2.2:80"] != 0.03 || m["twtrace_ephemeral_ports_in_use"]["destination=10.2.2.2:80"] != 3 {
		t.Errorf("ratio %v, in use %v: want namespace 1's 3 of 100", m["twtrace_ephemeral_port_use_ratio"], m["twtrace_ephemeral_ports_in_use"])
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
