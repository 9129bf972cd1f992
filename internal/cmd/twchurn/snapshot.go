package main

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// snapshot is what the kernel says about CPU time and TCP at one moment;
// differences between two give the cost and the evidence of a phase.
type snapshot struct {
	at   time.Time
	ok   bool // getrusage worked
	user time.Duration
	sys  time.Duration
	idle time.Duration      // all CPUs' idle time, from cpuidle (precise)
	ncpu int                // CPUs that idle counts; 0 = unknown
	tcp  map[string]float64 // /proc/net/snmp Tcp and /proc/net/netstat TcpExt
}

// kernelCounters are the TCP counters reported. They are per network
// namespace: with --netns they count this run alone.
var kernelCounters = []string{
	"ActiveOpens", "PassiveOpens", "AttemptFails", "EstabResets", "OutRsts", "RetransSegs",
	"TW", "TWRecycled", "TWKilled", "TCPTimeWaitOverflow",
	"ListenOverflows", "ListenDrops", "TCPAbortOnData", "TCPAbortOnClose",
}

func takeSnapshot() snapshot {
	s := snapshot{at: time.Now()}
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) == nil {
		s.ok = true
		s.user = time.Duration(ru.Utime.Nano())
		s.sys = time.Duration(ru.Stime.Nano())
	}
	s.idle, s.ncpu = readIdle()
	s.tcp = map[string]float64{}
	readCounters("/proc/net/snmp", "Tcp:", s.tcp)
	readCounters("/proc/net/netstat", "TcpExt:", s.tcp)
	return s
}

// readIdle sums the time every CPU spent in its cpuidle states. Unlike
// /proc/stat, which samples at each scheduler tick and, with NO_HZ, misses
// most of a periodic load (a 5000/s run shows there as a tenth of what it
// uses), cpuidle records each idle period's exact length.
func readIdle() (time.Duration, int) {
	cpus, _ := filepath.Glob("/sys/devices/system/cpu/cpu[0-9]*/cpuidle")
	var total time.Duration
	for _, dir := range cpus {
		states, _ := filepath.Glob(dir + "/state[0-9]*/time")
		if len(states) == 0 {
			return 0, 0
		}
		for _, f := range states {
			b, err := os.ReadFile(f)
			if err != nil {
				return 0, 0
			}
			us, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
			if err != nil {
				return 0, 0
			}
			total += time.Duration(us) * time.Microsecond
		}
	}
	return total, len(cpus)
}

// readCounters parses the header/values line pairs of /proc/net/snmp and
// /proc/net/netstat for the given prefix.
func readCounters(path, prefix string, into map[string]float64) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	var header []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || fields[0] != prefix {
			continue
		}
		if header == nil {
			header = fields
			continue
		}
		for i := 1; i < len(fields) && i < len(header); i++ {
			if v, err := strconv.ParseFloat(fields[i], 64); err == nil {
				into[header[i]] = v
			}
		}
		return
	}
}

// portReuseLimit estimates, from this namespace's sysctls, how many
// connections per second the client-close case can make before connect()
// runs short of ports. The client keeps each 4-tuple in TIME_WAIT; connect()
// may take it over (tcp_tw_reuse) once it is tcp_tw_reuse_delay old (1 s;
// whole seconds before Linux 6.13). connect() walks one half of
// ip_local_port_range (the even ports; bind() gets the odd ones) and turns
// to the other half only after a scan of the first: past this limit every
// connect() pays for that scan, and past twice it, EADDRNOTAVAIL. Each
// server endpoint (address and port) has its own set of 4-tuples.
func portReuseLimit(endpoints int) float64 {
	lo, hi, err := readPortRange()
	if err != nil {
		return 0
	}
	delay := 1.0
	if b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_tw_reuse_delay"); err == nil {
		if ms, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && ms > 0 {
			delay = float64(ms) / 1000
		}
	}
	if b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_tw_reuse"); err == nil && strings.TrimSpace(string(b)) == "0" {
		// No reuse: a port is free when its TIME_WAIT ends, 60 s on.
		return float64(endpoints) * float64(hi-lo+1) / 60
	}
	return float64(endpoints) * float64((hi-lo+1)/2) / delay
}

func readPortRange() (lo, hi int, err error) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0, err
	}
	return parsePortRange(string(b))
}
