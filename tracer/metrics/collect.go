package metrics

import (
	"cmp"
	"net/netip"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/table"
)

// slotSnap is a copy of one label value's counters, taken under the lock.
type slotSnap struct {
	value string
	streamCounts
	failures map[failKey]portCounts
}

// snap is what one scrape emits from the exporter's own counters.
type snap struct {
	slots  []slotSnap
	kinds  [event.KindHeader + 1]uint64
	lost   uint64
	folded uint64
	inUse  int
	errors map[string]uint64
	// tableSlot maps a namespace of the table to its label value.
	tableValue map[uint32]string
}

// Collect reads the table and the kernel and sends every metric.
func (x *Exporter) Collect(ch chan<- prometheus.Metric) {
	now := x.cfg.Now()
	ports := x.cfg.Table.Ports()
	remotes := x.cfg.Table.Remotes()
	tstats := x.cfg.Table.Stats()
	agg := x.aggregates()
	rangeOf := x.portRanges(remotes)

	x.mu.Lock()
	s := x.snapshot(now.UnixNano(), ports, remotes)
	x.mu.Unlock()

	b := x.cfg.Build
	ch <- prometheus.MustNewConstMetric(x.descs.build, prometheus.GaugeValue, 1, b.Version, b.Revision, b.GoVersion)
	x.emitSlots(ch, &s, agg)
	x.emitSockets(ch, &s, ports)
	x.emitEphemeral(ch, &s, remotes, rangeOf)
	x.emitKernel(ch)
	for k, n := range s.kinds {
		if n > 0 {
			ch <- prometheus.MustNewConstMetric(x.descs.events, prometheus.CounterValue, float64(n), event.Kind(k).String())
		}
	}
	ch <- prometheus.MustNewConstMetric(x.descs.lost, prometheus.CounterValue, float64(s.lost))
	ch <- prometheus.MustNewConstMetric(x.descs.evictions, prometheus.CounterValue, float64(tstats.Evicted))
	if x.descs.labelValues != nil {
		name := x.cfg.Label.Name()
		ch <- prometheus.MustNewConstMetric(x.descs.labelValues, prometheus.GaugeValue, float64(s.inUse), name)
		ch <- prometheus.MustNewConstMetric(x.descs.labelFolded, prometheus.CounterValue, float64(s.folded), name)
	}
	x.mu.Lock()
	for src, n := range x.errors {
		ch <- prometheus.MustNewConstMetric(x.descs.errors, prometheus.CounterValue, float64(n), src)
	}
	x.mu.Unlock()
}

// snapshot gives the table's namespaces their label values, ends the
// slots of values gone idle, copies the counters, and moves port labels to
// the busiest ports for the next scrape. x.mu is held.
func (x *Exporter) snapshot(now int64, ports []table.PortSummary, remotes []table.RemoteSummary) snap {
	s := snap{kinds: x.kinds, lost: x.lost, folded: x.labels.folded, tableValue: map[uint32]string{}}
	if x.cfg.Label == LabelNetNS {
		see := func(ns uint32) {
			if _, ok := s.tableValue[ns]; !ok {
				s.tableValue[ns] = x.labels.values[x.labels.netnsSlot(ns, now, false)]
			}
		}
		for i := range ports {
			if ports[i].Total() > 0 { // a row of counters alone shows in no gauge
				see(ports[i].NetNS)
			}
		}
		for i := range remotes {
			see(remotes[i].NetNS)
		}
	}
	if x.cfg.Label != LabelNone {
		for _, i := range x.labels.expire(now) {
			if i < len(x.slots) {
				x.slots[i] = &slotData{}
			}
		}
		if x.cfg.Label == LabelContainer {
			x.labels.resetPIDs() // a pid may now run in another container
		}
		s.inUse = x.labels.inUse()
	}
	for i, sd := range x.slots {
		if !sd.used || (i > 0 && !x.labels.live[i]) {
			continue
		}
		ss := slotSnap{streamCounts: sd.streamCounts, failures: map[failKey]portCounts{}}
		if x.cfg.Label != LabelNone {
			ss.value = x.labels.values[i]
		}
		for k, c := range sd.failures {
			// Copy, then move labels: a port that loses its label has its
			// final value in this scrape, and counts in other after it.
			ss.failures[k] = c.clone()
			c.rebalance(x.cfg.TopPorts)
		}
		s.slots = append(s.slots, ss)
	}
	return s
}

// values appends the extra label's value to a metric's labels, when it has one.
func (x *Exporter) values(v string, labels ...string) []string {
	if x.cfg.Label == LabelNone {
		return labels
	}
	return append(labels, v)
}

// tableValue is the label value of a namespace of the table: "" unless
// in --by-netns mode.
func (x *Exporter) tableValue(s *snap, ns uint32) string {
	if x.cfg.Label != LabelNetNS {
		return ""
	}
	return s.tableValue[ns]
}

// tableLabels appends a table metric's label value, in --by-netns mode.
func (x *Exporter) tableLabels(v string, labels ...string) []string {
	if x.cfg.Label != LabelNetNS {
		return labels
	}
	return append(labels, v)
}

func (x *Exporter) emitSlots(ch chan<- prometheus.Metric, s *snap, agg *Aggregates) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	if agg != nil {
		// The kernel's counts have no extra label (serve refuses the
		// combination): one slot, the only one.
		x.emitTransitions(ch, "", &agg.Transitions)
		for st := range agg.Durations {
			var h durationHist
			k := &agg.Durations[st]
			h.merge(&k.Slots, k.SumHi, k.SumLo)
			x.emitHist(ch, "", event.State(st), &h)
		}
	}
	for i := range s.slots {
		sl := &s.slots[i]
		if agg == nil {
			x.emitTransitions(ch, sl.value, &sl.transitions)
			for st := range sl.durations {
				x.emitHist(ch, sl.value, event.State(st), &sl.durations[st])
			}
		}
		counter(x.descs.twEnters, sl.twEnters, x.values(sl.value)...)
		for _, op := range []event.TimeWaitOp{event.TimeWaitExpire, event.TimeWaitReuse, event.TimeWaitKill} {
			counter(x.descs.twEnds, sl.twEnds[op], x.values(sl.value, op.String())...)
		}
		for k, pc := range sl.failures {
			errno := "other"
			if k.errno != errnoOther {
				errno = event.ErrnoName(k.errno)
			}
			sys := syscallNames[k.sys]
			for _, p := range pc.ports {
				counter(x.descs.failures, p.n, x.values(sl.value, sys, errno, portLabel(p.port))...)
			}
			if pc.other > 0 {
				counter(x.descs.failures, pc.other, x.values(sl.value, sys, errno, otherValue)...)
			}
		}
	}
}

func (x *Exporter) emitTransitions(ch chan<- prometheus.Metric, value string, t *[NumStates][NumStates]uint64) {
	for from := range t {
		for to, n := range t[from] {
			if n > 0 {
				ch <- prometheus.MustNewConstMetric(x.descs.transitions, prometheus.CounterValue, float64(n),
					x.values(value, event.State(from).String(), event.State(to).String())...)
			}
		}
	}
}

func (x *Exporter) emitHist(ch chan<- prometheus.Metric, value string, st event.State, h *durationHist) {
	if h.count == 0 {
		return
	}
	buckets, sum := h.buckets()
	ch <- prometheus.MustNewConstHistogram(x.descs.durations, h.count, sum, buckets, x.values(value, st.String())...)
}

// portLabel is a port's label value: its number, or "ephemeral" for port 0
// (a bind() asking for any port; the table's row of connect()-made sockets).
func portLabel(p uint16) string {
	if p == 0 {
		return "ephemeral"
	}
	return strconv.Itoa(int(p))
}

// reportedStates are the states twtrace_sockets always reports, 0 included.
var reportedStates = []event.State{
	event.StateEstablished, event.StateSynSent, event.StateSynRecv, event.StateFinWait1,
	event.StateFinWait2, event.StateTimeWait, event.StateCloseWait, event.StateLastAck,
	event.StateListen, event.StateClosing,
}

type portKey struct {
	value string
	port  uint16
}

func (x *Exporter) emitSockets(ch chan<- prometheus.Metric, s *snap, ports []table.PortSummary) {
	byState := map[string]*[NumStates]int{} // by label value
	tw := map[string]map[uint16]int{}
	for i := range ports {
		p := &ports[i]
		if p.Total() == 0 {
			continue
		}
		key := x.tableValue(s, p.NetNS)
		st := byState[key]
		if st == nil {
			st = new([NumStates]int)
			byState[key] = st
			tw[key] = map[uint16]int{}
		}
		for k, n := range p.States {
			if k < NumStates {
				st[k] += n
			}
		}
		if p.TimeWait > 0 {
			tw[key][p.Port] += p.TimeWait
		}
	}
	if len(byState) == 0 && x.cfg.Label != LabelNetNS {
		byState[""] = new([NumStates]int) // zeros rather than nothing
	}
	for v, st := range byState {
		for _, state := range reportedStates {
			ch <- prometheus.MustNewConstMetric(x.descs.sockets, prometheus.GaugeValue, float64(st[state]), x.tableLabels(v, state.String())...)
		}
		byPort := make([]ssEntry, 0, len(tw[v]))
		for port, n := range tw[v] {
			byPort = append(byPort, ssEntry{port, uint64(n)})
		}
		var total uint64
		for _, e := range byPort {
			total += e.n
		}
		folded := len(byPort) > x.cfg.TopPorts
		top := topK(byPort, x.cfg.TopPorts, func(a, b ssEntry) int {
			return cmp.Or(cmp.Compare(b.n, a.n), cmp.Compare(a.port, b.port))
		})
		for _, e := range top {
			total -= e.n
			ch <- prometheus.MustNewConstMetric(x.descs.twSockets, prometheus.GaugeValue, float64(e.n), x.tableLabels(v, portLabel(e.port))...)
		}
		if folded {
			ch <- prometheus.MustNewConstMetric(x.descs.twSockets, prometheus.GaugeValue, float64(total), x.tableLabels(v, otherValue)...)
		}
	}
}

// destUse is one destination's use of ephemeral ports in one namespace.
type destUse struct {
	dest  netip.AddrPort
	inUse float64
	ratio float64 // -1: the namespace's range is unknown
}

// beforeDest ranks destinations: the largest share of the range first,
// then the most ports.
func beforeDest(a, b destUse) int {
	return cmp.Or(cmp.Compare(b.ratio, a.ratio), cmp.Compare(b.inUse, a.inUse), a.dest.Compare(b.dest))
}

func (x *Exporter) emitEphemeral(ch chan<- prometheus.Metric, s *snap, remotes []table.RemoteSummary,
	rangeOf func(uint32) (int, bool)) {
	type key struct {
		value string
		dest  netip.AddrPort
	}
	// Without --by-netns, a destination seen from several namespaces is
	// reported for the one where it uses the largest share of the range.
	at := make(map[key]int, len(remotes)) // index in byValue[value]
	byValue := map[string][]destUse{}
	valueNS := map[string]uint32{}
	for i := range remotes {
		r := &remotes[i]
		v := x.tableValue(s, r.NetNS)
		valueNS[v] = r.NetNS
		u := destUse{dest: r.Remote, inUse: float64(r.Total), ratio: -1}
		if n, ok := rangeOf(r.NetNS); ok && n > 0 {
			u.ratio = float64(r.Total) / float64(n)
		}
		k := key{v, r.Remote}
		if j, ok := at[k]; !ok {
			at[k] = len(byValue[v])
			byValue[v] = append(byValue[v], u)
		} else if beforeDest(u, byValue[v][j]) < 0 {
			byValue[v][j] = u
		}
	}
	for v, dests := range byValue {
		folded := len(dests) > x.cfg.TopDestinations
		top := topK(dests, x.cfg.TopDestinations, beforeDest)
		for _, u := range top {
			x.emitDest(ch, u, x.tableLabels(v, u.dest.String()))
		}
		if folded {
			other := destUse{ratio: -1}
			for _, u := range dests[len(top):] { // topK leaves the rest after the top
				other.inUse += u.inUse
				other.ratio = max(other.ratio, u.ratio)
			}
			x.emitDest(ch, other, x.tableLabels(v, otherValue))
		}
	}
	// The ranges: the host's, or each labelled namespace's.
	if x.cfg.Label != LabelNetNS {
		if n, ok := rangeOf(x.cfg.HostNetNS); ok {
			ch <- prometheus.MustNewConstMetric(x.descs.ephRange, prometheus.GaugeValue, float64(n))
		}
		return
	}
	for v, ns := range valueNS {
		if v == otherValue {
			continue
		}
		if n, ok := rangeOf(ns); ok {
			ch <- prometheus.MustNewConstMetric(x.descs.ephRange, prometheus.GaugeValue, float64(n), v)
		}
	}
}

func (x *Exporter) emitDest(ch chan<- prometheus.Metric, u destUse, labels []string) {
	ch <- prometheus.MustNewConstMetric(x.descs.ephInUse, prometheus.GaugeValue, u.inUse, labels...)
	if u.ratio >= 0 {
		ch <- prometheus.MustNewConstMetric(x.descs.ephRatio, prometheus.GaugeValue, u.ratio, labels...)
	}
}

func (x *Exporter) emitKernel(ch chan<- prometheus.Metric) {
	if x.cfg.Kernel == nil {
		return
	}
	c, err := x.cfg.Kernel.Counters()
	if err != nil {
		x.countError("kernel_counters")
		return
	}
	for _, m := range []struct {
		d *prometheus.Desc
		t prometheus.ValueType
		v float64
	}{
		{x.descs.kTW, prometheus.CounterValue, float64(c.TW)},
		{x.descs.kTWKilled, prometheus.CounterValue, float64(c.TWKilled)},
		{x.descs.kTWRecycled, prometheus.CounterValue, float64(c.TWRecycled)},
		{x.descs.kOverflow, prometheus.CounterValue, float64(c.TCPTimeWaitOverflow)},
		{x.descs.kTimeWait, prometheus.GaugeValue, float64(c.TimeWait)},
		{x.descs.kOrphan, prometheus.GaugeValue, float64(c.Orphan)},
	} {
		ch <- prometheus.MustNewConstMetric(m.d, m.t, m.v)
	}
}
