package kstat

import (
	"errors"
	"fmt"
	"io/fs"
	"math/bits"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Sysctls are the per-namespace settings that decide what TIME_WAIT and
// port reuse do. A sysctl the running kernel lacks is listed in Missing and
// its field is -1 (tcp_tw_reuse_delay appeared in 6.13).
type Sysctls struct {
	PortRange       [2]int // net.ipv4.ip_local_port_range: ephemeral ports, both ends included
	ReservedPorts   string // net.ipv4.ip_local_reserved_ports: "" or a list such as "8080,9000-9010"
	UnprivPortStart int    // net.ipv4.ip_unprivileged_port_start
	AutobindReuse   int    // net.ipv4.ip_autobind_reuse: bind(port 0) may share a port under SO_REUSEADDR
	TWReuse         int    // net.ipv4.tcp_tw_reuse: 0 off, 1 on, 2 loopback only; connect() only
	TWReuseDelayMs  int    // net.ipv4.tcp_tw_reuse_delay: least age of a TIME_WAIT socket connect() may reuse
	Timestamps      int    // net.ipv4.tcp_timestamps: tcp_tw_reuse needs them
	FinTimeout      int    // net.ipv4.tcp_fin_timeout, seconds: orphaned FIN_WAIT2, not TIME_WAIT
	MaxTWBuckets    int    // net.ipv4.tcp_max_tw_buckets: beyond it, TIME_WAIT is skipped
	MaxSynBacklog   int    // net.ipv4.tcp_max_syn_backlog
	Syncookies      int    // net.ipv4.tcp_syncookies
	SoMaxConn       int    // net.core.somaxconn: listen() backlog cap

	Missing []string // sysctls this kernel does not have, by dotted name
}

// intSysctls maps the one-number sysctls to their fields.
var intSysctls = []struct {
	name  string
	field func(*Sysctls) *int
}{
	{"net.ipv4.ip_unprivileged_port_start", func(s *Sysctls) *int { return &s.UnprivPortStart }},
	{"net.ipv4.ip_autobind_reuse", func(s *Sysctls) *int { return &s.AutobindReuse }},
	{"net.ipv4.tcp_tw_reuse", func(s *Sysctls) *int { return &s.TWReuse }},
	{"net.ipv4.tcp_tw_reuse_delay", func(s *Sysctls) *int { return &s.TWReuseDelayMs }},
	{"net.ipv4.tcp_timestamps", func(s *Sysctls) *int { return &s.Timestamps }},
	{"net.ipv4.tcp_fin_timeout", func(s *Sysctls) *int { return &s.FinTimeout }},
	{"net.ipv4.tcp_max_tw_buckets", func(s *Sysctls) *int { return &s.MaxTWBuckets }},
	{"net.ipv4.tcp_max_syn_backlog", func(s *Sysctls) *int { return &s.MaxSynBacklog }},
	{"net.ipv4.tcp_syncookies", func(s *Sysctls) *int { return &s.Syncookies }},
	{"net.core.somaxconn", func(s *Sysctls) *int { return &s.SoMaxConn }},
}

const (
	portRangeName     = "net.ipv4.ip_local_port_range"
	reservedPortsName = "net.ipv4.ip_local_reserved_ports"
)

// Sysctls reads every sysctl of the struct in one call.
func (r *Reader) Sysctls() (Sysctls, error) {
	var s Sysctls
	missing := func(name string, err error) bool {
		if errors.Is(err, fs.ErrNotExist) {
			s.Missing = append(s.Missing, name)
			return true
		}
		return false
	}
	for _, e := range intSysctls {
		p := e.field(&s)
		v, err := r.sysFS.SysctlInts(e.name)
		switch {
		case missing(e.name, err):
			*p = -1
		case err != nil:
			return Sysctls{}, fmt.Errorf("read %s: %w", e.name, err)
		case len(v) != 1:
			return Sysctls{}, fmt.Errorf("read %s: %d values, want 1", e.name, len(v))
		default:
			*p = v[0]
		}
	}

	v, err := r.sysFS.SysctlInts(portRangeName)
	switch {
	case missing(portRangeName, err):
		s.PortRange = [2]int{-1, -1}
	case err != nil:
		return Sysctls{}, fmt.Errorf("read %s: %w", portRangeName, err)
	case len(v) != 2:
		return Sysctls{}, fmt.Errorf("read %s: %d values, want 2", portRangeName, len(v))
	default:
		s.PortRange = [2]int{v[0], v[1]}
	}

	// Read directly: procfs reads sysctls into 128 bytes, and this list
	// can be longer.
	b, err := os.ReadFile(filepath.Join(r.sysDir, "net/ipv4/ip_local_reserved_ports"))
	switch {
	case missing(reservedPortsName, err):
	case err != nil:
		return Sysctls{}, fmt.Errorf("read %s: %w", reservedPortsName, err)
	default:
		s.ReservedPorts = strings.TrimSpace(string(b))
	}
	return s, nil
}

// Values returns the sysctls by dotted name as sysctl -n prints them, for
// a capture's header. Missing ones are left out.
func (s Sysctls) Values() map[string]string {
	out := make(map[string]string, len(intSysctls)+2)
	for _, e := range intSysctls {
		if s.Has(e.name) {
			out[e.name] = strconv.Itoa(*e.field(&s))
		}
	}
	if s.Has(portRangeName) {
		out[portRangeName] = fmt.Sprintf("%d\t%d", s.PortRange[0], s.PortRange[1])
	}
	if s.Has(reservedPortsName) {
		out[reservedPortsName] = s.ReservedPorts
	}
	return out
}

// Has reports whether the kernel has the sysctl, by dotted name.
func (s Sysctls) Has(name string) bool {
	for _, m := range s.Missing {
		if m == name {
			return false
		}
	}
	return true
}

// SysctlsFromValues is the inverse of Values, for the sysctls a capture's
// header recorded: a name it lacks is Missing.
func SysctlsFromValues(v map[string]string) Sysctls {
	var s Sysctls
	for _, e := range intSysctls {
		n, err := strconv.Atoi(strings.TrimSpace(v[e.name]))
		if err != nil {
			*e.field(&s) = -1
			s.Missing = append(s.Missing, e.name)
			continue
		}
		*e.field(&s) = n
	}
	f := strings.Fields(v[portRangeName])
	lo, err1 := strconv.Atoi(safeField(f, 0))
	hi, err2 := strconv.Atoi(safeField(f, 1))
	if len(f) != 2 || err1 != nil || err2 != nil {
		s.PortRange = [2]int{-1, -1}
		s.Missing = append(s.Missing, portRangeName)
	} else {
		s.PortRange = [2]int{lo, hi}
	}
	if r, ok := v[reservedPortsName]; ok {
		s.ReservedPorts = r
	} else {
		s.Missing = append(s.Missing, reservedPortsName)
	}
	return s
}

func safeField(f []string, i int) string {
	if i < len(f) {
		return f[i]
	}
	return ""
}

// EphemeralPorts is how many local ports connect() can choose from for one
// destination: those of ip_local_port_range that ip_local_reserved_ports
// does not list (the kernel keeps the list as a bitmap: entries may
// overlap). ok is false when the range is unknown or the list unreadable.
func (s Sysctls) EphemeralPorts() (n int, ok bool) {
	lo, hi := s.PortRange[0], s.PortRange[1]
	if lo <= 0 || hi < lo || hi > 65535 {
		return 0, false
	}
	var reserved [65536 / 64]uint64
	for _, item := range strings.Split(s.ReservedPorts, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		a, b, isRange := strings.Cut(item, "-")
		first, err1 := strconv.Atoi(strings.TrimSpace(a))
		last, err2 := first, error(nil)
		if isRange {
			last, err2 = strconv.Atoi(strings.TrimSpace(b))
		}
		if err1 != nil || err2 != nil || first < 0 || last < first || last > 65535 {
			return 0, false
		}
		for p := max(first, lo); p <= min(last, hi); p++ {
			reserved[p/64] |= 1 << (p % 64)
		}
	}
	n = hi - lo + 1
	for _, w := range reserved {
		n -= bits.OnesCount64(w)
	}
	return n, true
}
