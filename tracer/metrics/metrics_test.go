package metrics

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/twtrace/twtrace/internal/sample"
	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/kstat"
	"github.com/twtrace/twtrace/tracer/table"
)

const hostNS = 4026531840

// newTest returns an exporter over a fresh table, with the kernel counters
// of the kstat fixture, registered in its own registry.
func newTest(t *testing.T, cfg Config) (*Exporter, *table.Table, *prometheus.Registry) {
	t.Helper()
	tab := table.New(table.Config{Derive: true})
	kr, err := kstat.NewReader("../kstat/testdata/proc")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Table, cfg.Kernel, cfg.HostNetNS = tab, kr, hostNS
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	x := New(cfg)
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(x); err != nil {
		t.Fatal(err)
	}
	return x, tab, reg
}

// feed applies events as the session does: the table first (it derives
// events), then the exporter sees the batch and the derived events.
func feed(t *testing.T, x *Exporter, tab *table.Table, evs []event.Event) {
	t.Helper()
	derived := tab.ApplyBatch(evs, nil)
	if err := x.Observe(evs); err != nil {
		t.Fatal(err)
	}
	if err := x.Observe(derived); err != nil {
		t.Fatal(err)
	}
}

// series is one sample of a gathered metric: its labels as k=v,... and value.
type series map[string]float64

func gather(t *testing.T, reg *prometheus.Registry) map[string]series {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]series{}
	for _, mf := range mfs {
		s := series{}
		for _, m := range mf.GetMetric() {
			var kv []string
			for _, l := range m.GetLabel() {
				kv = append(kv, l.GetName()+"="+l.GetValue())
			}
			key := strings.Join(kv, ",")
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				s[key] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				s[key] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				s[key] = float64(m.GetHistogram().GetSampleCount())
			}
		}
		out[mf.GetName()] = s
	}
	return out
}

func TestSampleStream(t *testing.T) {
	x, tab, reg := newTest(t, Config{})
	feed(t, x, tab, sample.Events())
	m := gather(t, reg)

	// The sample: a server on 8080 that closes first, a database client
	// that closes first, a reset connection (SYN_SENT→CLOSE).
	tr := m["twtrace_transitions_total"]
	for key, want := range map[string]float64{
		"from=FIN_WAIT2,to=CLOSE":        2,
		"from=ESTABLISHED,to=FIN_WAIT1":  2,
		"from=CLOSE,to=LISTEN":           1,
		"from=LISTEN,to=SYN_RECV":        1,
		"from=ESTABLISHED,to=CLOSE_WAIT": 1,
		"from=SYN_SENT,to=ESTABLISHED":   3,
		"from=SYN_SENT,to=CLOSE":         1,
	} {
		if tr[key] != want {
			t.Errorf("transitions %s = %v, want %v", key, tr[key], want)
		}
	}
	var states, total float64
	for _, ev := range sample.Events() {
		if ev.Kind == event.KindState {
			states++
		}
	}
	for _, v := range tr {
		total += v
	}
	if total != states || float64(transitions(x)) != states {
		t.Errorf("transitions sum to %v (Transitions() %d), want the %v state events", total, transitions(x), states)
	}
	f := m["twtrace_syscall_failures_total"]
	want := series{"errno=EADDRINUSE,port=8080,syscall=bind": 1, "errno=EADDRINUSE,port=8080,syscall=listen": 1,
		"errno=EADDRNOTAVAIL,port=443,syscall=connect": 1}
	if fmt.Sprint(f) != fmt.Sprint(want) {
		t.Errorf("failures = %v, want %v", f, want)
	}
	if m["twtrace_timewait_enters_total"][""] != 2 || m["twtrace_timewait_ends_total"]["cause=expire"] != 1 {
		t.Errorf("timewait enters %v, ends %v", m["twtrace_timewait_enters_total"], m["twtrace_timewait_ends_total"])
	}
	if got := m["twtrace_events_lost_total"][""]; got != 17 {
		t.Errorf("lost = %v, want the sample's 17", got)
	}
	// The server's TIME_WAIT expired; the client's holds a local port
	// towards the database.
	if got := m["twtrace_sockets"]["state=TIME_WAIT"]; got != 1 {
		t.Errorf("TIME_WAIT sockets = %v, want 1", got)
	}
	if fmt.Sprint(m["twtrace_timewait_sockets"]) != "map[port=ephemeral:1]" {
		t.Errorf("TIME_WAIT by port %v", m["twtrace_timewait_sockets"])
	}
	if got := m["twtrace_ephemeral_ports_in_use"]["destination=10.0.0.9:5432"]; got != 2 {
		t.Errorf("ports in use towards the database = %v (%v)", got, m["twtrace_ephemeral_ports_in_use"])
	}
	if got := m["twtrace_ephemeral_port_use_ratio"]["destination=10.0.0.9:5432"]; got != 2.0/28232 {
		t.Errorf("use ratio = %v", got)
	}
	k := m["twtrace_kernel_tcpext_tw_total"][""]
	if k != 1234 || m["twtrace_kernel_tcpext_tw_killed_total"][""] != 7 || m["twtrace_kernel_timewait_sockets"][""] != 42 {
		t.Errorf("kernel counters: TW %v, TWKilled %v, tw %v", k, m["twtrace_kernel_tcpext_tw_killed_total"], m["twtrace_kernel_timewait_sockets"])
	}
	if got := m["twtrace_ephemeral_port_range_size"][""]; got != 28232 {
		t.Errorf("port range = %v, want 60999-32768+1 (the fixture's reserved ports are outside it)", got)
	}
	if m["twtrace_build_info"] == nil || m["twtrace_collect_errors_total"] != nil {
		t.Errorf("build info %v, errors %v", m["twtrace_build_info"], m["twtrace_collect_errors_total"])
	}
}

func TestDurationBuckets(t *testing.T) {
	for _, tc := range []struct {
		ns   uint64
		slot int
	}{{0, 0}, {1, 0}, {2, 1}, {3, 2}, {4, 2}, {5, 3}, {1024, 10}, {1025, 11}, {1 << 62, 62}, {^uint64(0), 63}} {
		if got := Log2Slot(tc.ns); got != tc.slot {
			t.Errorf("Log2Slot(%d) = %d, want %d", tc.ns, got, tc.slot)
		}
	}
	var h durationHist
	for _, d := range []time.Duration{1024, 1025, 4096, 5 * time.Second, 24 * time.Hour} {
		h.add(d)
	}
	b, sum := h.buckets()
	if b[1024e-9] != 1 || b[4096e-9] != 3 || b[float64(1<<32)/1e9] != 3 || b[float64(1<<34)/1e9] != 4 || b[bucketBounds[len(bucketBounds)-1]] != 4 {
		t.Errorf("buckets %v", b)
	}
	if want := (1024 + 1025 + 4096 + 5e9 + 86400e9) / 1e9; sum != want || h.count != 5 {
		t.Errorf("sum %v count %d, want %v and 5", sum, h.count, want)
	}
	// The sum keeps 128 bits: a million day-long connections overflow 64.
	var big durationHist
	for range 1000 {
		big.add(1 << 62)
	}
	if _, s := big.buckets(); s != 1000*float64(uint64(1)<<62)/1e9 {
		t.Errorf("sum of 1000 × 2^62 ns = %v", s)
	}
}

func TestHistogramFromStream(t *testing.T) {
	x, tab, reg := newTest(t, Config{})
	feed(t, x, tab, sample.Events())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "twtrace_state_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() != "ESTABLISHED" {
				continue
			}
			h := m.GetHistogram()
			// Three left ESTABLISHED, after 25.004, 25.03 and 39 ms.
			if h.GetSampleCount() != 3 || h.GetSampleSum() != 0.089034 || len(h.GetBucket()) != len(bucketBounds) {
				t.Errorf("ESTABLISHED: %d samples, %d buckets", h.GetSampleCount(), len(h.GetBucket()))
			}
			return
		}
	}
	t.Fatal("no ESTABLISHED histogram")
}

// The hot path counts a state event without allocating.
func TestObserveAllocs(t *testing.T) {
	for _, mode := range []LabelMode{LabelNone, LabelNetNS} {
		x, _, _ := newTest(t, Config{Label: mode})
		batch := sample.Events()
		_ = x.Observe(batch)
		if n := testing.AllocsPerRun(100, func() { _ = x.Observe(batch) }); n != 0 {
			t.Errorf("mode %d: %v allocations per batch", mode, n)
		}
	}
}

// bindFail is a failed bind() to a port in a namespace.
func bindFail(port uint16, netns uint32, errno int32) event.Event {
	return event.Event{Kind: event.KindBind, Time: sample.Start, PID: 100, NetNS: netns, Family: event.FamilyIPv4,
		Src: netip.AddrPortFrom(netip.IPv4Unspecified(), port), Ret: errno}
}

const eaddrinuse, eacces = -98, -13

func TestTopPortsFollowTheBusiest(t *testing.T) {
	x, tab, reg := newTest(t, Config{TopPorts: 3})
	var evs []event.Event
	for p := range uint16(5) { // ports 1..5 once each: 1, 2, 3 take the labels
		evs = append(evs, bindFail(p+1, hostNS, eaddrinuse))
	}
	feed(t, x, tab, evs)
	f := gather(t, reg)["twtrace_syscall_failures_total"]
	want := series{"errno=EADDRINUSE,port=1,syscall=bind": 1, "errno=EADDRINUSE,port=2,syscall=bind": 1,
		"errno=EADDRINUSE,port=3,syscall=bind": 1, "errno=EADDRINUSE,port=other,syscall=bind": 2}
	if fmt.Sprint(f) != fmt.Sprint(want) {
		t.Fatalf("first scrape %v, want %v", f, want)
	}
	// Port 5 becomes the busiest: it takes a label from the least busy
	// labelled port and counts from then on; other keeps what came before.
	evs = nil
	for range 10 {
		evs = append(evs, bindFail(5, hostNS, eaddrinuse))
	}
	feed(t, x, tab, evs)
	gather(t, reg) // labels move after a scrape, for the next one
	feed(t, x, tab, []event.Event{bindFail(5, hostNS, eaddrinuse)})
	f = gather(t, reg)["twtrace_syscall_failures_total"]
	if f["errno=EADDRINUSE,port=5,syscall=bind"] != 1 || f["errno=EADDRINUSE,port=other,syscall=bind"] != 12 {
		t.Errorf("after the burst: %v", f)
	}
	// Port 1, 2 or 3 lost its label: its series ended at 1, and the other
	// series hold the rest.
	var sum float64
	for _, v := range f {
		sum += v
	}
	if sum != 15 || len(f) != 4 {
		t.Errorf("the series sum to %v in %d series, want the 16 failures less the retired port's 1, in 3 ports + other", sum, len(f))
	}
}

// Every series only grows, whatever the ranking does, and the series sum
// to everything counted.
func TestPortSeriesAreMonotonic(t *testing.T) {
	x, tab, reg := newTest(t, Config{TopPorts: 4})
	last := series{}
	total := 0
	for round := range 200 {
		var evs []event.Event
		for i := range 50 {
			// A hot set drifting over 40 ports, and noise over 3 000.
			p := uint16((round/10+i%5)%40 + 1)
			if i%7 == 0 {
				p = uint16(1000 + (round*50+i)%3000)
			}
			evs = append(evs, bindFail(p, hostNS, eaddrinuse))
		}
		total += len(evs)
		feed(t, x, tab, evs)
		f := gather(t, reg)["twtrace_syscall_failures_total"]
		if len(f) > 5 {
			t.Fatalf("round %d: %d series, want at most 4 ports + other", round, len(f))
		}
		var in uint64
		x.mu.Lock()
		for _, c := range x.slots[0].failures {
			in += c.other
			for _, v := range c.labeled {
				in += v
			}
			for _, v := range c.retired {
				in += v
			}
		}
		x.mu.Unlock()
		if int(in) != total {
			t.Fatalf("round %d: counters hold %d of %d", round, in, total)
		}
		for k, v := range f {
			if v < last[k] {
				t.Fatalf("round %d: %s went from %v to %v", round, k, last[k], v)
			}
			last[k] = v // a series that ended keeps its last value here
		}
	}
	// Every failure is in exactly one series: the last value of every
	// series ever shown sums to the total.
	var sum float64
	for _, v := range last {
		sum += v
	}
	if sum != float64(total) {
		t.Errorf("the series sum to %v, want the %d failures", sum, total)
	}
}

func TestRareErrnosFold(t *testing.T) {
	x, tab, reg := newTest(t, Config{})
	var evs []event.Event
	for e := int32(1); e <= maxErrnos+5; e++ {
		evs = append(evs, bindFail(80, hostNS, -e))
	}
	feed(t, x, tab, evs)
	f := gather(t, reg)["twtrace_syscall_failures_total"]
	if len(f) != maxErrnos+1 || f["errno=other,port=80,syscall=bind"] != 5 {
		t.Errorf("%d series (%v), want %d errnos and errno=other with 5", len(f), f, maxErrnos)
	}
}

func TestByNetNSFoldsAndExpires(t *testing.T) {
	now := sample.Start
	x, tab, reg := newTest(t, Config{Label: LabelNetNS, MaxLabelValues: 2, LabelIdle: time.Minute,
		Now: func() time.Time { return now }})
	feed(t, x, tab, []event.Event{bindFail(80, 1, eaddrinuse), bindFail(80, 2, eaddrinuse),
		bindFail(80, 3, eaddrinuse), bindFail(80, 3, eacces)})
	m := gather(t, reg)
	f := m["twtrace_syscall_failures_total"]
	want := series{"errno=EADDRINUSE,netns=1,port=80,syscall=bind": 1, "errno=EADDRINUSE,netns=2,port=80,syscall=bind": 1,
		"errno=EADDRINUSE,netns=other,port=80,syscall=bind": 1, "errno=EACCES,netns=other,port=80,syscall=bind": 1}
	if fmt.Sprint(f) != fmt.Sprint(want) {
		t.Errorf("failures %v\nwant %v", f, want)
	}
	if m["twtrace_label_folded_total"]["label=netns"] != 2 || m["twtrace_label_values"]["label=netns"] != 2 {
		t.Errorf("folded %v, values %v", m["twtrace_label_folded_total"], m["twtrace_label_values"])
	}
	// Namespace 1 stays busy; 2 goes quiet and gives its slot to 3.
	now = now.Add(45 * time.Second)
	feed(t, x, tab, []event.Event{bindFail(80, 1, eaddrinuse)})
	now = now.Add(30 * time.Second)
	gather(t, reg)
	feed(t, x, tab, []event.Event{bindFail(80, 3, eaddrinuse)})
	f = gather(t, reg)["twtrace_syscall_failures_total"]
	if f["errno=EADDRINUSE,netns=2,port=80,syscall=bind"] != 0 || f["errno=EADDRINUSE,netns=3,port=80,syscall=bind"] != 1 ||
		f["errno=EADDRINUSE,netns=1,port=80,syscall=bind"] != 2 || f["errno=EADDRINUSE,netns=other,port=80,syscall=bind"] != 1 {
		t.Errorf("after namespace 2 went idle: %v", f)
	}
}

func TestByContainer(t *testing.T) {
	containers := map[uint32]string{100: "c0ffee", 200: ""}
	x, tab, reg := newTest(t, Config{Label: LabelContainer, ContainerOf: func(pid uint32) string { return containers[pid] }})
	st := event.Event{Kind: event.KindState, Owner: 100, PID: 7, Old: event.StateEstablished, New: event.StateFinWait1,
		Cookie: 1, Family: event.FamilyIPv4, Time: sample.Start}
	host := bindFail(80, hostNS, eaddrinuse)
	host.PID = 200
	feed(t, x, tab, []event.Event{st, bindFail(80, hostNS, eaddrinuse), host})
	m := gather(t, reg)
	if m["twtrace_transitions_total"]["container=c0ffee,from=ESTABLISHED,to=FIN_WAIT1"] != 1 {
		t.Errorf("transitions %v: want the owner's container", m["twtrace_transitions_total"])
	}
	f := m["twtrace_syscall_failures_total"]
	if f["container=c0ffee,errno=EADDRINUSE,port=80,syscall=bind"] != 1 || f["container=,errno=EADDRINUSE,port=80,syscall=bind"] != 1 {
		t.Errorf("failures %v: want the task's container, and none for the host", f)
	}
	if _, ok := m["twtrace_sockets"]["state=ESTABLISHED"]; !ok {
		t.Errorf("sockets %v: the table's metrics have no container label", m["twtrace_sockets"])
	}
}

func TestKernelAggregates(t *testing.T) {
	agg := &Aggregates{}
	agg.Transitions[event.StateFinWait2][event.StateClose] = 7
	agg.Durations[event.StateFinWait2].Slots[Log2Slot(3000)] = 7
	agg.Durations[event.StateFinWait2].SumLo = 21000
	x, tab, reg := newTest(t, Config{Aggregates: func() (*Aggregates, error) { return agg, nil }})
	feed(t, x, tab, sample.Events())
	m := gather(t, reg)
	if fmt.Sprint(m["twtrace_transitions_total"]) != "map[from=FIN_WAIT2,to=CLOSE:7]" {
		t.Errorf("transitions %v: want the kernel's alone", m["twtrace_transitions_total"])
	}
	if fmt.Sprint(m["twtrace_state_duration_seconds"]) != "map[state=FIN_WAIT2:7]" {
		t.Errorf("durations %v", m["twtrace_state_duration_seconds"])
	}
	if transitions(x) != 7 {
		t.Errorf("Transitions() = %d", transitions(x))
	}
	if m["twtrace_syscall_failures_total"]["errno=EADDRINUSE,port=8080,syscall=bind"] != 1 {
		t.Errorf("failures still come from the stream: %v", m["twtrace_syscall_failures_total"])
	}
}

func TestValidate(t *testing.T) {
	tab := table.New(table.Config{})
	for _, c := range []Config{
		{Table: tab, TopPorts: MaxTopPorts + 1},
		{Table: tab, TopDestinations: -1},
		{Table: tab, MaxLabelValues: MaxLabelValues + 1},
		{},
	} {
		if err := c.Validate(); err == nil || strings.Count(err.Error(), ".") > 1 {
			t.Errorf("%+v: %v", c, err)
		}
	}
	if err := (&Config{Table: tab}).Validate(); err != nil {
		t.Error(err)
	}
}

func TestDescribedOnce(t *testing.T) {
	for _, mode := range []LabelMode{LabelNone, LabelNetNS, LabelContainer} {
		d := newDescs(mode)
		var names []string
		for _, desc := range d.all() {
			names = append(names, desc.String())
		}
		if len(slices.Compact(slices.Sorted(slices.Values(names)))) != len(names) {
			t.Errorf("mode %d: a description twice", mode)
		}
	}
}

// transitions sums what the exporter counted, over the extra label.
func transitions(x *Exporter) uint64 {
	var n uint64
	if agg := x.aggregates(); agg != nil {
		for _, row := range agg.Transitions {
			for _, v := range row {
				n += v
			}
		}
		return n
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, s := range x.slots {
		for _, row := range s.transitions {
			for _, v := range row {
				n += v
			}
		}
	}
	return n
}
