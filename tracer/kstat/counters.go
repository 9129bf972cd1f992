package kstat

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Counters is one reading of a namespace's TIME_WAIT evidence.
type Counters struct {
	Time time.Time // when it was read

	// Cumulative TcpExt counters from /proc/net/netstat. The kernel
	// counts a timewait socket when it arms its timer, not when the timer
	// ends: TW and TWKilled count entries (measured on 6.18: three
	// connections closed client first add 3 to TW at once).
	TW                  uint64 // timewait sockets armed for more than 4 s: TIME_WAIT entries
	TWKilled            uint64 // timewait sockets armed for 4 s or less: orphaned FIN_WAIT2 under a short tcp_fin_timeout
	TWRecycled          uint64 // TIME_WAIT 4-tuples taken over by a new connect()
	TCPTimeWaitOverflow uint64 // timewait sockets not created: tcp_max_tw_buckets reached, the connection just vanished

	// Gauges from the TCP line of /proc/net/sockstat.
	TimeWait int // timewait sockets now: TIME_WAIT, and orphaned FIN_WAIT2 in timewait form
	Orphan   int // closed by their process, still finishing (FIN_WAIT1, LAST_ACK, CLOSING)
	InUse    int // sockets in the hash tables: listening and connected, not timewait
}

// Counters reads netstat and sockstat.
func (r *Reader) Counters() (Counters, error) {
	c := Counters{Time: time.Now()}
	data, err := os.ReadFile(filepath.Join(r.netDir, "netstat"))
	if err != nil {
		return Counters{}, fmt.Errorf("read netstat: %w", err)
	}
	ext, err := parseNetstat(data, "TcpExt")
	if err != nil {
		return Counters{}, fmt.Errorf("parse %s: %w", filepath.Join(r.netDir, "netstat"), err)
	}
	for _, f := range []struct {
		name string
		dst  *uint64
	}{
		{"TW", &c.TW}, {"TWKilled", &c.TWKilled}, {"TWRecycled", &c.TWRecycled},
		{"TCPTimeWaitOverflow", &c.TCPTimeWaitOverflow},
	} {
		v, ok := ext[f.name]
		if !ok {
			return Counters{}, fmt.Errorf("netstat has no TcpExt %s", f.name)
		}
		*f.dst = v
	}

	ss, err := r.netFS.NetSockstat()
	if err != nil {
		return Counters{}, fmt.Errorf("read sockstat: %w", err)
	}
	for _, p := range ss.Protocols {
		if p.Protocol != "TCP" {
			continue
		}
		if p.TW == nil || p.Orphan == nil {
			return Counters{}, fmt.Errorf("sockstat TCP line lacks tw or orphan")
		}
		c.TimeWait, c.Orphan, c.InUse = *p.TW, *p.Orphan, p.InUse
		return c, nil
	}
	return Counters{}, fmt.Errorf("sockstat has no TCP line")
}

// parseNetstat returns the named group of a netstat-format file: lines in
// pairs, "TcpExt: Name1 Name2 …" then "TcpExt: 1 2 …". procfs parses the
// same file (Proc.Netstat) but only from /proc/<pid>, which is the
// process's namespace, not the thread's, and into float64s.
func parseNetstat(data []byte, group string) (map[string]uint64, error) {
	prefix := []byte(group + ":")
	lines := bytes.Split(data, []byte("\n"))
	for i := 0; i+1 < len(lines); i += 2 {
		names, values := lines[i], lines[i+1]
		if !bytes.HasPrefix(names, prefix) {
			continue
		}
		if !bytes.HasPrefix(values, prefix) {
			return nil, fmt.Errorf("%s names not followed by values", group)
		}
		nf, vf := bytes.Fields(names[len(prefix):]), bytes.Fields(values[len(prefix):])
		if len(nf) != len(vf) {
			return nil, fmt.Errorf("%s has %d names but %d values", group, len(nf), len(vf))
		}
		out := make(map[string]uint64, len(nf))
		for j, n := range nf {
			v, err := strconv.ParseUint(string(vf[j]), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", group, n, err)
			}
			out[string(n)] = v
		}
		return out, nil
	}
	return nil, fmt.Errorf("no %s lines", group)
}
