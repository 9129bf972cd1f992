package metrics

import (
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// BuildInfo names the running build.
type BuildInfo struct {
	Version   string // the module version, "(devel)" for a local build
	Revision  string // the VCS revision, "unknown" when not recorded
	GoVersion string
}

// ReadBuildInfo describes the running binary.
func ReadBuildInfo() BuildInfo {
	b := BuildInfo{Version: "(devel)", Revision: "unknown", GoVersion: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			b.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && s.Value != "" {
				b.Revision = s.Value
			}
		}
	}
	return b
}

// descs are the exporter's metric descriptions; docs/metrics.md says the
// same in prose, and a test keeps the two in step.
type descs struct {
	build, transitions, durations, failures, twEnters, twEnds  *prometheus.Desc
	sockets, twSockets, ephInUse, ephRatio, ephRange           *prometheus.Desc
	kTW, kTWKilled, kTWRecycled, kOverflow, kTimeWait, kOrphan *prometheus.Desc
	events, lost, evictions, labelValues, labelFolded, errors  *prometheus.Desc
}

func (d *descs) all() []*prometheus.Desc {
	all := []*prometheus.Desc{
		d.build, d.transitions, d.durations, d.failures, d.twEnters, d.twEnds,
		d.sockets, d.twSockets, d.ephInUse, d.ephRatio, d.ephRange,
		d.kTW, d.kTWKilled, d.kTWRecycled, d.kOverflow, d.kTimeWait, d.kOrphan,
		d.events, d.lost, d.evictions, d.errors,
	}
	if d.labelValues != nil {
		all = append(all, d.labelValues, d.labelFolded)
	}
	return all
}

func newDescs(mode LabelMode) descs {
	// Metrics from the stream carry the extra label; those from the socket
	// table only the namespace (the table's aggregates have no containers).
	ev := func(labels ...string) []string {
		if mode != LabelNone {
			return append(labels, mode.Name())
		}
		return labels
	}
	tab := func(labels ...string) []string {
		if mode == LabelNetNS {
			return append(labels, mode.Name())
		}
		return labels
	}
	d := func(name, help string, labels []string) *prometheus.Desc {
		return prometheus.NewDesc("twtrace_"+name, help, labels, nil)
	}
	ds := descs{
		build: d("build_info", "The running twtrace: always 1.", []string{"version", "revision", "goversion"}),
		transitions: d("transitions_total",
			"TCP state transitions the kernel reported, by old and new state.", ev("from", "to")),
		durations: d("state_duration_seconds",
			"Time a socket spent in a state before it left it, by that state.", ev("state")),
		failures: d("syscall_failures_total",
			"Failed bind(), connect() and listen() calls on TCP sockets, by errno and port (bind, listen: the local port; connect: the destination's); the busiest ports, the rest as port=\"other\".",
			ev("syscall", "errno", "port")),
		twEnters: d("timewait_enters_total", "Connections that entered TIME_WAIT.", ev()),
		twEnds: d("timewait_ends_total",
			"TIME_WAIT sockets that ended, by cause: expire (the 60 s timer), reuse (a new connection took the 4-tuple), kill (ended early: RST, SYN, or gone from the kernel's table).",
			ev("cause")),
		sockets: d("sockets", "Open TCP sockets in the socket table, by state.", tab("state")),
		twSockets: d("timewait_sockets",
			"TIME_WAIT sockets by local port: the busiest ports, connect()-made sockets as port=\"ephemeral\", the rest as port=\"other\".",
			tab("port")),
		ephInUse: d("ephemeral_ports_in_use",
			"Local ports connect()-made sockets hold towards a destination (open and TIME_WAIT): the busiest destinations, the rest summed as destination=\"other\".",
			tab("destination")),
		ephRatio: d("ephemeral_port_use_ratio",
			"ephemeral_ports_in_use over the namespace's usable ephemeral ports; 1 means connect() to that destination fails with EADDRNOTAVAIL. destination=\"other\" is the highest of the rest.",
			tab("destination")),
		ephRange: d("ephemeral_port_range_size",
			"Usable ephemeral ports of the namespace: ip_local_port_range less ip_local_reserved_ports.", tab()),
		kTW:         d("kernel_tcpext_tw_total", "The kernel's TcpExt TW counter: TIME_WAIT sockets armed (/proc/net/netstat).", nil),
		kTWKilled:   d("kernel_tcpext_tw_killed_total", "The kernel's TcpExt TWKilled counter: timewait sockets armed for 4 s or less (orphaned FIN_WAIT2 under a short tcp_fin_timeout).", nil),
		kTWRecycled: d("kernel_tcpext_tw_recycled_total", "The kernel's TcpExt TWRecycled counter: TIME_WAIT 4-tuples a new connect() took over (tcp_tw_reuse).", nil),
		kOverflow:   d("kernel_tcpext_tcp_timewait_overflow_total", "The kernel's TcpExt TCPTimeWaitOverflow counter: TIME_WAIT skipped because tcp_max_tw_buckets was reached.", nil),
		kTimeWait:   d("kernel_timewait_sockets", "The kernel's count of timewait sockets (/proc/net/sockstat tw).", nil),
		kOrphan:     d("kernel_orphan_sockets", "The kernel's count of orphaned TCP sockets (/proc/net/sockstat orphan).", nil),
		events: d("events_total",
			"Events that reached twtrace from the kernel or were derived from it, by kind.", []string{"kind"}),
		lost:      d("events_lost_total", "Events the kernel could not deliver (ring buffer full, or a program run skipped).", nil),
		evictions: d("table_evictions_total", "Sockets dropped from the socket table because it was full.", nil),
		errors: d("collect_errors_total",
			"Readings a scrape could not make, by source; their metrics are missing from that scrape.", []string{"source"}),
	}
	if mode != LabelNone {
		ds.labelValues = d("label_values", "Values of the extra label that have series of their own.", []string{"label"})
		ds.labelFolded = d("label_folded_total",
			"Events counted under the extra label's value \"other\" because it had reached its bound.", []string{"label"})
	}
	return ds
}

// Describe sends every metric's description.
func (x *Exporter) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range x.descs.all() {
		ch <- d
	}
}

// Registry is the registry serve exports: the exporter, and the client
// library's process and Go collectors.
func Registry(x *Exporter) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(x,
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector())
	return reg
}
