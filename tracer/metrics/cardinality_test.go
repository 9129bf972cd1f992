package metrics

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/twtrace/twtrace/internal/sample"
	"github.com/twtrace/twtrace/tracer/event"
)

// churn10k makes every kind of labelled observation on 10 000 distinct
// ports, each in its own network namespace: bind and listen failures,
// connect failures, TIME_WAIT sockets left by a server, and clients holding
// ports towards 10 000 destinations.
func churn10k() []event.Event {
	const n = 10000
	var evs []event.Event
	at := sample.Start
	for i := range n {
		port := uint16(10000 + i)
		ns := uint32(1 + i)
		lo := netip.MustParseAddr("127.0.0.1")
		peer := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		errno := int32(eaddrinuse)
		if i%3 == 0 {
			errno = eacces
		}
		evs = append(evs,
			event.Event{Kind: event.KindBind, Time: at, PID: 1, NetNS: ns, Family: event.FamilyIPv4,
				Src: netip.AddrPortFrom(lo, port), Ret: errno},
			event.Event{Kind: event.KindListen, Time: at, PID: 1, NetNS: ns, Family: event.FamilyIPv4,
				Src: netip.AddrPortFrom(lo, port), Ret: eaddrinuse},
			event.Event{Kind: event.KindConnect, Time: at, PID: 1, NetNS: ns, Family: event.FamilyIPv4,
				Dst: netip.AddrPortFrom(peer, port), Ret: -99},
		)
		// A server socket on the port that closes first: TIME_WAIT.
		srv := event.Event{Kind: event.KindState, Time: at, NetNS: ns, Family: event.FamilyIPv4,
			Cookie: uint64(1 + 2*i), Src: netip.AddrPortFrom(lo, port), Dst: netip.AddrPortFrom(peer, 40000),
			Old: event.StateFinWait2, New: event.StateClose, OldKnown: true, OldDur: time.Duration(i) * time.Microsecond}
		var tw event.Event
		event.InferTimeWait(&srv, &tw)
		// A client connected to a destination of its own.
		cli := event.Event{Kind: event.KindState, Time: at, NetNS: ns, Family: event.FamilyIPv4,
			Cookie: uint64(2 + 2*i), Src: netip.AddrPortFrom(lo, 0), Dst: netip.AddrPortFrom(peer, port),
			Old: event.StateClose, New: event.StateSynSent, Owner: 1}
		est := cli
		est.Src, est.Old, est.New = netip.AddrPortFrom(lo, uint16(30000+i%20000)), event.StateSynSent, event.StateEstablished
		evs = append(evs, srv, tw, cli, est)
	}
	return evs
}

func TestCardinalityUnder10000Ports(t *testing.T) {
	const k, dests, values = 7, 5, 9
	for _, mode := range []LabelMode{LabelNone, LabelNetNS} {
		x, tab, reg := newTest(t, Config{TopPorts: k, TopDestinations: dests, Label: mode, MaxLabelValues: values})
		evs := churn10k()
		last := series{} // every failure series ever shown, at its last value
		scrape := func() map[string]series {
			m := gather(t, reg)
			for key, v := range m["twtrace_syscall_failures_total"] {
				last[key] = v
			}
			return m
		}
		for i := 0; i < len(evs); i += 512 {
			feed(t, x, tab, evs[i:min(i+512, len(evs))])
			if i%(512*20) == 0 {
				scrape() // rankings move between scrapes
			}
		}
		m := scrape()
		perValue := 1
		if mode == LabelNetNS {
			perValue = values + 1 // the values, and other
		}
		// Each family's bound: its fixed labels times ports (K + other).
		bounds := map[string]int{
			"twtrace_syscall_failures_total":   (2 + 1 + 1) * (k + 1) * perValue, // bind: 2 errnos; listen, connect: 1
			"twtrace_timewait_sockets":         (k + 1) * perValue,
			"twtrace_ephemeral_ports_in_use":   (dests + 1) * perValue,
			"twtrace_ephemeral_port_use_ratio": (dests + 1) * perValue,
			"twtrace_transitions_total":        3 * perValue,
			"twtrace_sockets":                  len(reportedStates) * perValue,
		}
		for name, bound := range bounds {
			if got := len(m[name]); got > bound || got == 0 {
				t.Errorf("mode %d: %s has %d series, want 1 to %d", mode, name, got, bound)
			}
		}
		if mode == LabelNetNS {
			seen := map[string]bool{}
			for _, s := range m {
				for key := range s {
					for _, kv := range strings.Split(key, ",") {
						if v, ok := strings.CutPrefix(kv, "netns="); ok {
							seen[v] = true
						}
					}
				}
			}
			if len(seen) > values+1 || !seen[otherValue] {
				t.Errorf("%d netns values (%v), want at most %d and other", len(seen), seen, values)
			}
			if m["twtrace_label_folded_total"]["label=netns"] == 0 {
				t.Error("no fold counted")
			}
		}
		// Nothing is lost by folding: the series hold every failure.
		var failures float64
		for _, v := range last {
			failures += v
		}
		if failures != 30000 {
			t.Errorf("mode %d: failures sum to %v, want 30000", mode, failures)
		}
		var tw float64
		for _, v := range m["twtrace_timewait_sockets"] {
			tw += v
		}
		if tw != 10000 {
			t.Errorf("mode %d: TIME_WAIT sockets sum to %v, want 10000", mode, tw)
		}
	}
}
