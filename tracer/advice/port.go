package advice

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/kstat"
)

// PortFacts is what the kernel shows about one port of one network
// namespace: every socket on it and the namespace's sysctls.
type PortFacts struct {
	Port    uint16
	NetNS   uint32
	Sockets []Socket
	// Sysctls of the port's namespace; nil when they could not be read.
	Sysctls *kstat.Sysctls
	Now     time.Time
	// ReuseUnknown says why the sockets' SO_REUSEADDR/SO_REUSEPORT could
	// not be read ("" when they were).
	ReuseUnknown string
}

// PortReport is the answer to "why is this port blocked": the verdict for
// the bind the caller means, every other way of binding, and the fixes. Its
// JSON is `twtrace why --json` (docs/why.md).
type PortReport struct {
	Port          uint16           `json:"port"`
	NetNS         uint32           `json:"netns"`
	Addr          string           `json:"addr"`    // the address the verdict is for
	Options       string           `json:"options"` // ... and the socket options
	UID           uint32           `json:"uid"`     // ... and the user
	Verdict       string           `json:"verdict"` // "free" or "blocked"
	Certain       bool             `json:"certain"`
	Causes        []Cause          `json:"causes"`
	Holders       []HolderReport   `json:"holders"`
	Sockets       map[string]int   `json:"sockets"`
	TimeWaitUntil *time.Time       `json:"timewait_until"`
	Attempts      []AttemptReport  `json:"attempts"`
	Findings      []Finding        `json:"findings"`
	Fixes         []Fix            `json:"fixes"`
	Notes         []string         `json:"notes"`
	Outcome       Outcome          `json:"-"` // the verdict's prediction
	Facts         *PortFacts       `json:"-"`
	ByState       []StateCount     `json:"-"` // Sockets, in display order
	Blockers      map[string][]int `json:"-"` // socket indexes by Cause of the verdict
}

// StateCount is how many sockets of a port are in one state.
type StateCount struct {
	State string
	N     int
	Reuse string // the reuse options they have, "mixed" when they differ
}

// HolderReport is a process holding the port and the states of its sockets.
type HolderReport struct {
	Holder
	States []string `json:"states"`
}

// AttemptReport is one way of binding and what the kernel would answer.
type AttemptReport struct {
	Addr    string `json:"addr"`
	Stack   string `json:"stack,omitempty"` // IPv6 wildcards: "dualstack" or "v6only"
	Options string `json:"options"`
	Result  Result `json:"result"`
	Certain bool   `json:"certain"`
	// BlockedBy says what refuses it, e.g. "12 TIME_WAIT without SO_REUSEADDR".
	BlockedBy string `json:"blocked_by,omitempty"`
}

// DiagnosePort predicts every usual way of binding the port and explains the
// one the caller means (want; its port is f.Port).
func DiagnosePort(f *PortFacts, want Attempt) PortReport {
	want.Addr = netip.AddrPortFrom(want.Addr.Addr(), f.Port)
	r := PortReport{
		Port: f.Port, NetNS: f.NetNS, Addr: addrString(want), Options: want.Options.String(), UID: want.UID,
		Sockets: map[string]int{}, Facts: f, Holders: []HolderReport{}, Causes: []Cause{},
		Findings: []Finding{}, Fixes: []Fix{}, Notes: []string{},
	}
	r.summarise(f)
	r.Outcome = predict(f, want)
	r.Verdict, r.Certain = "free", r.Outcome.Certain
	if r.Outcome.Result != OK {
		r.Verdict = "blocked"
	}
	r.Blockers = map[string][]int{}
	for _, c := range r.Outcome.Conflicts {
		if !slices.Contains(r.Causes, c.Cause) {
			r.Causes = append(r.Causes, c.Cause)
		}
		r.Blockers[string(c.Cause)] = append(r.Blockers[string(c.Cause)], c.Socket)
	}
	for _, a := range attempts(want) {
		o := predict(f, a)
		ar := AttemptReport{Addr: addrString(a), Options: a.Options.String(), Result: o.Result, Certain: o.Certain}
		if a.Addr.Addr().Is6() && a.Addr.Addr().IsUnspecified() {
			ar.Stack = "dualstack"
			if a.V6Only {
				ar.Stack = "v6only"
			}
		}
		if o.Result != OK {
			ar.BlockedBy = describeConflicts(f, o.Conflicts)
		}
		r.Attempts = append(r.Attempts, ar)
	}
	if f.ReuseUnknown != "" {
		r.Notes = append(r.Notes, "SO_REUSEADDR/SO_REUSEPORT of the sockets could not be read ("+
			f.ReuseUnknown+"): answers that depend on them are marked uncertain")
	}
	portFindings(&r, f, want)
	for _, fd := range r.Findings {
		for _, fx := range fd.Fixes {
			if !slices.ContainsFunc(r.Fixes, func(x Fix) bool { return x.Text == fx.Text }) {
				r.Fixes = append(r.Fixes, fx)
			}
		}
	}
	return r
}

// predict is Predict with what only the namespace's sysctls tell: a port
// below ip_unprivileged_port_start needs CAP_NET_BIND_SERVICE.
func predict(f *PortFacts, a Attempt) Outcome {
	o := Predict(f.Sockets, a)
	if o.Result == OK && a.UID != 0 && f.Sysctls != nil && int(f.Port) < f.Sysctls.UnprivPortStart {
		// Refused with EACCES unless the program has CAP_NET_BIND_SERVICE.
		o.Result, o.Certain = "EACCES", false
	}
	return o
}

// attempts lists the ways of binding a report shows: the four sets of
// options on the caller's address, and on the IPv6 wildcard with and
// without IPV6_V6ONLY (or the IPv4 wildcard, when the caller's is IPv6).
func attempts(want Attempt) []Attempt {
	addrs := []Attempt{want}
	a := want.Addr.Addr().Unmap()
	port := want.Addr.Port()
	six := netip.AddrPortFrom(netip.IPv6Unspecified(), port)
	four := netip.AddrPortFrom(netip.IPv4Unspecified(), port)
	switch {
	case a.Is4():
		addrs = append(addrs, Attempt{Addr: six}, Attempt{Addr: six, V6Only: true})
	case a.IsUnspecified():
		addrs = append(addrs, Attempt{Addr: six, V6Only: !want.V6Only}, Attempt{Addr: four})
	default:
		addrs = append(addrs, Attempt{Addr: six}, Attempt{Addr: six, V6Only: true}, Attempt{Addr: four})
	}
	var out []Attempt
	for _, base := range addrs {
		for _, o := range AllOptions {
			out = append(out, Attempt{Addr: base.Addr, V6Only: base.V6Only, Options: o, UID: want.UID})
		}
	}
	return out
}

func addrString(a Attempt) string { return a.Addr.Addr().String() }

// summarise counts the sockets by state, the holders and the last TIME_WAIT.
func (r *PortReport) summarise(f *PortFacts) {
	type acc struct {
		n     int
		reuse string
	}
	states := map[string]*acc{}
	holders := map[uint32]*HolderReport{}
	for i := range f.Sockets {
		s := &f.Sockets[i]
		name := stateName(s)
		a := states[name]
		if a == nil {
			a = &acc{reuse: optionNames(s.Reuse)}
			states[name] = a
		} else if a.reuse != optionNames(s.Reuse) {
			a.reuse = "mixed"
		}
		a.n++
		r.Sockets[name]++
		if s.State == event.StateTimeWait && !s.Expires.IsZero() &&
			(r.TimeWaitUntil == nil || s.Expires.After(*r.TimeWaitUntil)) {
			t := s.Expires.UTC()
			r.TimeWaitUntil = &t
		}
		for _, h := range s.Holders {
			hr := holders[h.PID]
			if hr == nil {
				hr = &HolderReport{Holder: h}
				holders[h.PID] = hr
			}
			if !slices.Contains(hr.States, name) {
				hr.States = append(hr.States, name)
			}
		}
	}
	for name, a := range states {
		r.ByState = append(r.ByState, StateCount{State: name, N: a.n, Reuse: a.reuse})
	}
	slices.SortFunc(r.ByState, func(a, b StateCount) int {
		return cmp.Or(cmp.Compare(stateRank(a.State), stateRank(b.State)), cmp.Compare(a.State, b.State))
	})
	for _, h := range holders {
		r.Holders = append(r.Holders, *h)
	}
	slices.SortFunc(r.Holders, func(a, b HolderReport) int { return cmp.Compare(a.PID, b.PID) })
}

// stateName is the state as reports show it: BOUND for a bound-only socket.
func stateName(s *Socket) string {
	if s.Bound {
		return "BOUND"
	}
	return s.State.String()
}

// stateRank orders a report's states: what holds the port first.
func stateRank(name string) int {
	switch name {
	case "LISTEN":
		return 0
	case "BOUND":
		return 1
	case "TIME_WAIT":
		return 3
	}
	return 2
}

// describeConflicts says in a few words what refuses an attempt.
func describeConflicts(f *PortFacts, cs []Conflict) string {
	type key struct {
		state string
		reuse string
	}
	counts := map[key]int{}
	var order []key
	for _, c := range cs {
		s := &f.Sockets[c.Socket]
		k := key{stateName(s), reuseWords(s.Reuse)}
		if counts[k] == 0 {
			order = append(order, k)
		}
		counts[k]++
	}
	parts := make([]string, 0, len(order))
	for _, k := range order {
		parts = append(parts, fmt.Sprintf("%d %s %s", counts[k], k.state, k.reuse))
	}
	return strings.Join(parts, ", ")
}

// optionNames names a socket's options for a column: SO_REUSEADDR,
// SO_REUSEPORT, both, none, or unknown.
func optionNames(r event.Reuse) string {
	switch {
	case !r.Known():
		return "unknown"
	case r&(event.ReuseAddr|event.ReusePort) == event.ReuseAddr|event.ReusePort:
		return "SO_REUSEADDR+SO_REUSEPORT"
	case r&event.ReuseAddr != 0:
		return "SO_REUSEADDR"
	case r&event.ReusePort != 0:
		return "SO_REUSEPORT"
	}
	return "none"
}

// reuseWords says which options a socket has, for people.
func reuseWords(r event.Reuse) string {
	switch n := optionNames(r); n {
	case "unknown":
		return "(options unknown)"
	case "none":
		return "without SO_REUSEADDR"
	default:
		return "with " + n
	}
}
