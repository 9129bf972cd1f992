package main

import (
	"fmt"
	"io"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// TransitionsPerConn is how many sock:inet_sock_set_state events one
// connection makes, both ends together, when it closes normally:
//
//	client: CLOSE→SYN_SENT→ESTABLISHED, then as the first closer
//	        →FIN_WAIT1→FIN_WAIT2→CLOSE (TIME_WAIT has no event), or as the
//	        second →CLOSE_WAIT→LAST_ACK→CLOSE;
//	server: LISTEN→SYN_RECV (the child socket, when the handshake's ACK
//	        arrives)→ESTABLISHED, then the other of those two closing paths.
//
// A simultaneous close swaps FIN_WAIT2 for CLOSING: still five each.
const TransitionsPerConn = 10

// Result is one run's report; its JSON form is the --json output.
type Result struct {
	Close     string   `json:"close"`
	Family    string   `json:"family"`
	Addrs     []string `json:"addrs"`
	Port      int      `json:"port"`  // the first server port
	Ports     int      `json:"ports"` // consecutive ports from Port
	Workers   int      `json:"workers"`
	Inflight  int      `json:"inflight"`
	NetNS     bool     `json:"netns"`
	Rate      int      `json:"target_rate"` // 0: as fast as possible
	PaceSlack float64  `json:"pace_slack_us"`
	Count     uint64   `json:"target_count,omitempty"`
	Duration  float64  `json:"duration_s"`
	WarmupSec float64  `json:"warmup_s"`

	// The measured phase: connections started after the warmup.
	Connections uint64  `json:"connections"` // completed: request, reply, both closed normally
	Attempts    uint64  `json:"attempts"`
	Elapsed     float64 `json:"elapsed_s"` // end of warmup to the last completion
	ConnPerSec  float64 `json:"conn_per_s"`
	RateErrPct  float64 `json:"rate_error_pct"` // achieved vs target; 0 without --rate
	Late        uint64  `json:"late"`           // --rate: starts over 1 ms behind schedule
	MaxLateUS   float64 `json:"max_late_us"`
	CPUUser     float64 `json:"cpu_user_s"` // this process, getrusage
	CPUSys      float64 `json:"cpu_sys_s"`
	CPUPerConn  float64 `json:"cpu_us_per_conn"`
	SelfPct     float64 `json:"self_cpu_pct"`     // this process, share of all CPUs
	MachineBusy float64 `json:"machine_busy_pct"` // all CPUs, from cpuidle; -1 unknown
	NumCPU      int     `json:"cpus"`

	// The whole run, warmup included.
	WarmupConns  uint64            `json:"warmup_connections"`
	ServerClosed uint64            `json:"server_closed"` // server ends completed
	ErrorsTotal  uint64            `json:"errors_total"`
	Errors       map[string]uint64 `json:"errors"` // "op:KIND" → count, e.g. connect:EADDRNOTAVAIL
	PerConn      int               `json:"transitions_per_conn"`
	Expected     uint64            `json:"transitions_expected"`     // measured connections × per conn
	ExpectedRun  uint64            `json:"transitions_expected_run"` // all connections + listeners' 2 each
	KernelScope  string            `json:"kernel_scope"`             // "netns" (this run only) or "host"
	Kernel       map[string]int64  `json:"kernel"`                   // TCP counter deltas, measured phase
	KernelRun    map[string]int64  `json:"kernel_run"`               // the same over the whole run

	// Client-close only: the rate above which connect() runs out of
	// ephemeral ports whose TIME_WAIT it may reuse, and starts scanning
	// (slow) or failing (EADDRNOTAVAIL). 0 when it does not apply.
	PortReuseLimit float64 `json:"port_reuse_limit"`
}

func newResult(cfg *Config, r *shared, workers []*worker, addrs []netip.Addr, port int,
	before, mid, after snapshot) *Result {
	listeners := uint64(len(addrs) * cfg.Ports)
	res := &Result{
		Close: cfg.Close.String(), Family: "ipv4", Port: port, Ports: cfg.Ports, Workers: cfg.Workers,
		Inflight: cfg.Inflight, NetNS: cfg.NetNS, Rate: cfg.Rate, Count: cfg.Count,
		PaceSlack: float64(r.slack) / 1e3,
		Duration:  cfg.Duration.Seconds(), WarmupSec: cfg.Warmup.Seconds(),
		Errors: map[string]uint64{}, PerConn: TransitionsPerConn,
		KernelScope: "host", Kernel: counterDeltas(mid, after), KernelRun: counterDeltas(before, after),
	}
	if cfg.IPv6 {
		res.Family = "ipv6"
	}
	if cfg.NetNS {
		res.KernelScope = "netns"
	}
	for _, a := range addrs {
		res.Addrs = append(res.Addrs, a.String())
	}
	var last int64
	for _, w := range workers {
		s := &w.stats
		res.Connections += s.done[1]
		res.Attempts += s.started[1]
		res.WarmupConns += s.done[0]
		res.ServerClosed += s.served
		res.Late += s.late
		res.MaxLateUS = max(res.MaxLateUS, float64(s.maxLate)/1e3)
		last = max(last, s.lastDone)
		for k, v := range s.errors {
			res.Errors[k] += v
			res.ErrorsTotal += v
		}
	}
	if res.Connections > 0 {
		res.Elapsed = time.Duration(last - r.warmupEnd).Seconds()
	}
	if res.Elapsed > 0 {
		res.ConnPerSec = float64(res.Connections) / res.Elapsed
	}
	if cfg.Rate > 0 && res.ConnPerSec > 0 {
		res.RateErrPct = 100 * (res.ConnPerSec - float64(cfg.Rate)) / float64(cfg.Rate)
	}
	if mid.ok && after.ok {
		res.CPUUser = (after.user - mid.user).Seconds()
		res.CPUSys = (after.sys - mid.sys).Seconds()
		if res.Connections > 0 {
			res.CPUPerConn = (res.CPUUser + res.CPUSys) * 1e6 / float64(res.Connections)
		}
	}
	res.NumCPU = after.ncpu
	res.MachineBusy = -1
	if wall := after.at.Sub(mid.at); wall > 0 && after.ncpu > 0 && after.ncpu == mid.ncpu {
		capacity := float64(after.ncpu) * wall.Seconds()
		res.MachineBusy = 100 * (1 - (after.idle-mid.idle).Seconds()/capacity)
		res.SelfPct = 100 * (res.CPUUser + res.CPUSys) / capacity
	}
	res.Expected = res.Connections * TransitionsPerConn
	// Each listener adds CLOSE→LISTEN and LISTEN→CLOSE.
	res.ExpectedRun = (res.Connections+res.WarmupConns)*TransitionsPerConn + 2*listeners
	if cfg.Close == closeClient {
		res.PortReuseLimit = portReuseLimit(int(listeners))
	}
	return res
}

func counterDeltas(a, b snapshot) map[string]int64 {
	m := map[string]int64{}
	for _, k := range kernelCounters {
		va, ok1 := a.tcp[k]
		vb, ok2 := b.tcp[k]
		if ok1 && ok2 {
			m[k] = int64(vb - va)
		}
	}
	return m
}

// writeSummary prints the one-line human summary.
func (r *Result) writeSummary(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "twchurn: %d connections in %.2f s = %.0f/s", r.Connections, r.Elapsed, r.ConnPerSec)
	if r.Rate > 0 {
		fmt.Fprintf(&b, " (target %d/s, %+.2f%%, %d late)", r.Rate, r.RateErrPct, r.Late)
	}
	fmt.Fprintf(&b, "; close %s, %s, %d workers", r.Close, r.Family, r.Workers)
	if r.NetNS {
		b.WriteString(", netns")
	}
	fmt.Fprintf(&b, "; %d errors", r.ErrorsTotal)
	if r.ErrorsTotal > 0 {
		b.WriteString(" (")
		for i, k := range slices.Sorted(maps.Keys(r.Errors)) {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s %d", k, r.Errors[k])
		}
		b.WriteString(")")
	}
	fmt.Fprintf(&b, "; cpu user %.2f s sys %.2f s (%.1f µs/conn)", r.CPUUser, r.CPUSys, r.CPUPerConn)
	if r.MachineBusy >= 0 {
		fmt.Fprintf(&b, ", machine %.0f%% busy (this process %.0f%%)", r.MachineBusy, r.SelfPct)
	}
	fmt.Fprintf(&b, "; %d transitions expected (%d/conn)\n", r.Expected, r.PerConn)
	_, err := io.WriteString(w, b.String())
	return err
}
