package advice

import (
	"fmt"
	"strings"
	"time"

	"github.com/twtrace/twtrace/tracer/kstat"
)

// Finding is one conclusion of the advisor: what is wrong (Summary, one
// sentence), the evidence it rests on, and the fixes that work on the
// running kernel. Code is stable: docs/advice.md has a section per code
// with the why, the fix and the exceptions.
type Finding struct {
	Code     string   `json:"code"`
	Name     string   `json:"name"`
	Port     uint16   `json:"port,omitempty"`
	NetNS    uint32   `json:"netns,omitempty"`
	PID      uint32   `json:"pid,omitempty"` // the process it is about, when one
	Summary  string   `json:"summary"`
	Cause    string   `json:"cause"` // the summary in a few words, for one-line views
	Evidence []string `json:"evidence"`
	Fixes    []Fix    `json:"fixes"`
	// NotFixes are popular remedies that do not help here, and why.
	NotFixes []string `json:"not_fixes,omitempty"`
}

// Line is the finding on one line: the cause and its first two fixes.
func (f *Finding) Line() string { return f.LineAt(time.Time{}) }

// LineAt is Line with a wait counted down to now (a zero now keeps the
// time left when the finding was made).
func (f *Finding) LineAt(now time.Time) string {
	var fixes []string
	for _, fx := range f.Fixes[:min(2, len(f.Fixes))] {
		b := fx.Brief
		if fx.Kind == FixWait && fx.Until != nil && !now.IsZero() {
			b = "wait " + seconds(fx.Until.Sub(now))
			if !fx.Until.After(now) {
				b = "the wait is over"
			}
		}
		if b != "" {
			fixes = append(fixes, b)
		}
	}
	if len(fixes) == 0 {
		return f.Cause
	}
	return f.Cause + " — fix: " + strings.Join(fixes, "; ")
}

// Codes of the advisor's rules: TW1xx a refused bind(), TW2xx ports and
// address exhaustion, TW3xx sockets piling up and the kernel's limits.
const (
	CodeTimeWaitNoReuse   = "TW101" // TIME_WAIT left by a socket without SO_REUSEADDR
	CodeTimeWaitReuseNew  = "TW102" // TIME_WAIT with SO_REUSEADDR, the new socket lacks it
	CodeLiveHolder        = "TW103" // a live socket holds the port
	CodeReusePortUser     = "TW104" // SO_REUSEPORT on both, different users
	CodeV6Wildcard        = "TW105" // an IPv6 wildcard and IPv4 overlap
	CodeSecondListen      = "TW106" // two SO_REUSEADDR sockets: the second listen() fails
	CodeEphemeralTaken    = "TW107" // an outgoing connection took a port of the ephemeral range
	CodePrivilegedPort    = "TW108" // the port needs CAP_NET_BIND_SERVICE
	CodeTimeWaitUnknown   = "TW109" // TIME_WAIT whose options could not be read
	CodePortExhaustion    = "TW201" // connect() runs out of local ports towards a destination
	CodeAutobindExhausted = "TW202" // bind(0)/listen()'s autobind finds no free port
	CodeFinWait2Orphans   = "TW301" // orphaned FIN_WAIT2 sockets pile up
	CodeCloseWaitLeak     = "TW302" // CLOSE_WAIT sockets pile up under one process
	CodeTimeWaitBuckets   = "TW303" // near tcp_max_tw_buckets, or past it
	CodeTWRecycleConfig   = "TW304" // a sysctl file still sets tcp_tw_recycle
)

// sysctlFix builds a sysctl fix that names the current value.
func sysctlFix(s *kstat.Sysctls, name, suggested, why, brief string) Fix {
	cur := ""
	if s != nil {
		cur = s.Values()[name]
	}
	cur = strings.ReplaceAll(cur, "\t", " ")
	text := fmt.Sprintf("set %s = %s (now %s): %s", name, suggested, orUnknown(cur), why)
	return Fix{Kind: FixSysctl, Name: name, Current: cur, Suggested: suggested, Text: text, Brief: brief}
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// notTWReuse and notFinTimeout correct the advice most often given for a
// refused bind(): neither setting changes what bind() meets.
func notTWReuse(s *kstat.Sysctls) string {
	return fmt.Sprintf("net.ipv4.tcp_tw_reuse (now %s) does not help: it lets connect() reuse a TIME_WAIT 4-tuple, never bind()",
		orUnknown(value(s, "net.ipv4.tcp_tw_reuse")))
}

func notFinTimeout(s *kstat.Sysctls) string {
	return fmt.Sprintf("net.ipv4.tcp_fin_timeout (now %s) does not help: it bounds orphaned FIN_WAIT2 sockets; TIME_WAIT always lasts 60 s",
		orUnknown(value(s, "net.ipv4.tcp_fin_timeout")))
}

func value(s *kstat.Sysctls, name string) string {
	if s == nil {
		return ""
	}
	return strings.ReplaceAll(s.Values()[name], "\t", " ")
}

// seconds formats a time left for people: "41 s", "60 s", "12m0s".
func seconds(d time.Duration) string {
	d = roundUp(d)
	if d < 10*time.Minute {
		return fmt.Sprintf("%d s", int(d.Seconds()))
	}
	return d.String()
}
