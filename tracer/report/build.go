package report

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twtrace/twtrace/tracer/advice"
	"github.com/twtrace/twtrace/tracer/capture"
	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/kstat"
	"github.com/twtrace/twtrace/tracer/table"
	"github.com/twtrace/twtrace/tracer/text"
)

// Bounds: a long, busy capture makes a report of bounded size.
const (
	MaxFailures  = 10000 // refused syscalls diagnosed and kept for the advisor; the rest are counted
	maxTimes     = 20    // times listed per group of failures
	maxPIDs      = 16    // pids listed per group
	maxSamples   = 2000  // samples per timeline: past it, every other one is dropped
	maxSeries    = 256   // ports followed for timelines
	maxMarks     = 500   // failures marked per timeline
	maxTimelines = 8
	// firstPeriod is how often the table is sampled at first: a short
	// incident shows its states; a long capture doubles it (thin).
	firstPeriod = 100 * time.Millisecond
)

// Build replays the capture read by r and builds its report. A capture
// its recorder did not close is reported to its last whole event, with
// Cut saying where it was cut; other errors of the capture are returned.
func Build(ctx context.Context, r *capture.Reader, opt Options) (*Report, error) {
	h := r.Header()
	loc := opt.Location
	if loc == nil {
		loc = time.UTC
	}
	rep := &Report{
		File: r.Name(), Host: h.Host, Kernel: h.Kernel, Version: h.Version, Redacted: h.Redacted,
		Filters: h.Filters, Started: h.Started, Selected: []string{}, loc: loc,
		Findings: []advice.Finding{}, Kinds: []Count{}, Ports: []Port{}, Remotes: []Remote{},
		Failures: []Group{}, Processes: []Process{}, Timelines: []Timeline{},
	}
	socks, _ := r.Snapshot()
	rep.Snapshot = len(capture.FilterSockets(socks, &opt.Filter))
	hs := kstat.SysctlsFromValues(h.Sysctls)
	c := newCollector(rep, &opt, &hs, h.NetNS)
	err := r.Rebuild(ctx, c.tab, &opt.Filter, c.before, c.event)
	var cut *capture.CutError
	switch {
	case errors.As(err, &cut):
		rep.Cut, rep.Ended = cut.Error(), "cut"
	case err != nil:
		return nil, err
	}
	if end, ok := r.End(); ok {
		rep.Ended = end.Reason
		if h.Counters != nil && end.Counters != nil {
			rep.Counters = counterDelta(*h.Counters, *end.Counters)
		}
	}
	c.finish()
	return rep, nil
}

func counterDelta(a, b capture.Counters) *Counters {
	d := func(x, y uint64) int64 { return int64(y) - int64(x) }
	return &Counters{Start: a, End: b, TW: d(a.TW, b.TW), TWKilled: d(a.TWKilled, b.TWKilled),
		TWRecycled: d(a.TWRecycled, b.TWRecycled), Overflow: d(a.TCPTimeWaitOverflow, b.TCPTimeWaitOverflow)}
}

// portKey is a port of a namespace; port 0 with clients is the namespace's
// connect()-made sockets.
type portKey struct {
	netns   uint32
	port    uint16
	clients bool
}

// collector gathers the report as the capture is replayed.
type collector struct {
	rep     *Report
	opt     *Options
	tab     *table.Table
	sysctls *kstat.Sysctls
	hostNS  uint32
	facts   advice.Facts

	kinds   map[Count]int64
	every   time.Duration // the sampling period
	next    time.Time     // the next sample is due
	samples int
	ports   map[portKey]*Port
	series  map[portKey]*Timeline
	remotes map[string]*Remote
	groups  map[string]*Group
	order   []string // groups in order of their first failure
	procs   map[uint32]*Process
}

func newCollector(rep *Report, opt *Options, s *kstat.Sysctls, hostNS uint32) *collector {
	c := &collector{
		rep: rep, opt: opt, tab: table.New(table.Config{}), sysctls: s, hostNS: hostNS,
		kinds: map[Count]int64{}, every: firstPeriod, ports: map[portKey]*Port{},
		series: map[portKey]*Timeline{}, remotes: map[string]*Remote{}, groups: map[string]*Group{},
		procs: map[uint32]*Process{},
	}
	c.facts = advice.Facts{Namespaces: map[uint32]*advice.NetNS{hostNS: {Sysctls: s, FinWait2Orphans: -1}}}
	return c
}

// sysctlsOf is the recording namespace's sysctls for its events; other
// namespaces' are not in the capture.
func (c *collector) sysctlsOf(netns uint32) *kstat.Sysctls {
	if netns == c.hostNS || c.hostNS == 0 {
		return c.sysctls
	}
	return nil
}

func (c *collector) inSpan(ev *event.Event) bool {
	return (c.opt.From.IsZero() || !ev.Time.Before(c.opt.From)) && (c.opt.To.IsZero() || !ev.Time.After(c.opt.To))
}

// before samples the table as it was until ev: at the start of the span,
// and when a sampling period has passed.
func (c *collector) before(ev *event.Event) error {
	switch {
	case !c.inSpan(ev):
		return nil
	case c.rep.From.IsZero():
		c.rep.From = ev.Time
		c.sample(ev.Time)
	case !ev.Time.Before(c.next):
		// Nothing changed since the last event: the table now is the
		// table at the period's end.
		c.sample(c.next)
	default:
		return nil
	}
	c.next = ev.Time.Truncate(c.every).Add(c.every)
	return nil
}

// event takes one event, applied to the table already.
func (c *collector) event(ev *event.Event) error {
	if !c.inSpan(ev) {
		return nil
	}
	rep := c.rep
	rep.To = ev.Time
	rep.Events++
	c.kinds[countOf(ev)]++
	if ev.Kind == event.KindLost {
		rep.Lost += ev.Lost
	}
	if ev.Ret < 0 && (ev.Kind == event.KindBind || ev.Kind == event.KindConnect || ev.Kind == event.KindListen) {
		c.failure(ev)
	}
	return nil
}

func countOf(ev *event.Event) Count {
	c := Count{Kind: ev.Kind.String()}
	switch ev.Kind {
	case event.KindState:
		c.Detail = ev.New.String()
	case event.KindTimeWait:
		c.Detail = ev.TimeWait.String()
	case event.KindBind:
		c.Detail = "ok"
		if ev.Ret < 0 {
			c.Detail = "refused " + ev.Errno()
		}
	case event.KindConnect, event.KindListen:
		c.Detail = "refused " + ev.Errno()
	}
	return c
}

// sample records every port's sockets and every destination's TIME_WAITs.
func (c *collector) sample(at time.Time) {
	for _, p := range c.tab.Ports() {
		k := portKey{p.NetNS, p.Port, p.Clients > 0}
		c.trackPort(k, &p, at)
		tl := c.timeline(k)
		if tl == nil {
			continue
		}
		s := Sample{At: at, Listen: p.States[event.StateListen], Established: p.States[event.StateEstablished],
			TimeWait: p.TimeWait, CloseWait: p.States[event.StateCloseWait]}
		s.Other = p.Total() - s.Listen - s.Established - s.TimeWait - s.CloseWait
		tl.Samples = append(tl.Samples, s)
	}
	for _, r := range c.tab.Remotes() {
		if r.TimeWait == 0 {
			break // most TIME_WAIT first
		}
		k := fmt.Sprintf("%d %s", r.NetNS, r.Remote)
		m := c.remotes[k]
		if m == nil {
			m = &Remote{NetNS: r.NetNS, Remote: text.Addr(r.Remote)}
			c.remotes[k] = m
		}
		if r.TimeWait > m.Peak {
			m.Peak, m.PeakAt = r.TimeWait, at
		}
	}
	if c.samples++; c.samples >= maxSamples {
		c.thin()
	}
}

// timeline is a port's timeline, begun if need be; nil past maxSeries.
func (c *collector) timeline(k portKey) *Timeline {
	tl := c.series[k]
	if tl == nil && len(c.series) < maxSeries {
		tl = &Timeline{NetNS: k.netns, Port: k.port, Clients: k.clients}
		c.series[k] = tl
	}
	return tl
}

// thin halves the samples of every timeline and doubles the period.
func (c *collector) thin() {
	for _, tl := range c.series {
		kept := tl.Samples[:0]
		for i, s := range tl.Samples {
			if i%2 == 0 {
				kept = append(kept, s)
			}
		}
		tl.Samples = kept
	}
	c.samples /= 2
	c.every *= 2
}

// trackPort follows a port's TIME_WAIT peak.
func (c *collector) trackPort(k portKey, p *table.PortSummary, at time.Time) {
	m := c.ports[k]
	if m == nil {
		if p.TimeWait == 0 && p.BindFailures == 0 && p.ListenFailures == 0 {
			return
		}
		m = &Port{NetNS: k.netns, Port: k.port, Clients: k.clients}
		c.ports[k] = m
	}
	if p.TimeWait > m.Peak {
		m.Peak, m.PeakAt = p.TimeWait, at
		m.LeftBy = owners(p.TimeWaitOwners)
	}
	m.AtEnd = p.TimeWait
	m.Enters, m.Refused = p.TimeWaitEnters, p.BindFailures+p.ListenFailures
	if l := owners(p.Owners); len(l) > 0 {
		m.Owners = l
	}
}

func owners(os []table.Owner) []Owner {
	out := make([]Owner, 0, len(os))
	for _, o := range os {
		out = append(out, Owner{o.PID, text.Comm(&o.Comm)})
	}
	return out
}

// finish sums up at the end of the capture.
func (c *collector) finish() {
	rep := c.rep
	if !rep.To.IsZero() && rep.To.After(c.lastSample()) {
		c.sample(rep.To)
	}
	for k, n := range c.kinds {
		k.N = n
		rep.Kinds = append(rep.Kinds, k)
	}
	slices.SortFunc(rep.Kinds, func(a, b Count) int {
		return cmp.Or(cmp.Compare(kindRank(a.Kind), kindRank(b.Kind)), cmp.Compare(b.N, a.N), cmp.Compare(a.Detail, b.Detail))
	})
	for _, p := range c.ports {
		rep.Ports = append(rep.Ports, *p)
	}
	slices.SortFunc(rep.Ports, func(a, b Port) int {
		return cmp.Or(cmp.Compare(b.Peak, a.Peak), cmp.Compare(b.Refused, a.Refused), cmp.Compare(a.NetNS, b.NetNS), cmp.Compare(a.Port, b.Port))
	})
	rep.Ports = rep.Ports[:min(len(rep.Ports), 10)]
	for _, r := range c.remotes {
		rep.Remotes = append(rep.Remotes, *r)
	}
	slices.SortFunc(rep.Remotes, func(a, b Remote) int { return cmp.Or(cmp.Compare(b.Peak, a.Peak), cmp.Compare(a.Remote, b.Remote)) })
	rep.Remotes = rep.Remotes[:min(len(rep.Remotes), 5)]
	for _, k := range c.order {
		rep.Failures = append(rep.Failures, *c.groups[k])
	}
	c.processes()
	c.timelines()
	rep.Period = c.every
	c.facts.Now = rep.To
	c.facts.Ports, c.facts.Processes, c.facts.Remotes = c.tab.Ports(), c.tab.Processes(), c.tab.Remotes()
	rep.Facts = &c.facts
	if f := advice.Advise(&c.facts); f != nil {
		rep.Findings = f
	}
}

func (c *collector) lastSample() time.Time {
	var last time.Time
	for _, tl := range c.series {
		if n := len(tl.Samples); n > 0 && tl.Samples[n-1].At.After(last) {
			last = tl.Samples[n-1].At
		}
	}
	return last
}

// kindRank orders the counts: failures and loss first.
func kindRank(k string) int {
	return slices.Index([]string{"lost", "bind", "listen", "connect", "timewait", "state"}, k)
}

// timelines keeps the ports worth a picture: those with failures, then
// those with the most TIME_WAIT.
func (c *collector) timelines() {
	var keys []portKey
	for k, tl := range c.series {
		if len(tl.Failures) > 0 || c.ports[k] != nil && c.ports[k].Peak > 0 {
			keys = append(keys, k)
		}
	}
	rank := func(k portKey) (int, int) {
		p := 0
		if c.ports[k] != nil {
			p = c.ports[k].Peak
		}
		return len(c.series[k].Failures), p
	}
	slices.SortFunc(keys, func(a, b portKey) int {
		fa, pa := rank(a)
		fb, pb := rank(b)
		// Failures first, service ports before connect()'s, then TIME_WAIT.
		return cmp.Or(cmp.Compare(min(fb, 1), min(fa, 1)), cmp.Compare(b2i(a.clients), b2i(b.clients)),
			cmp.Compare(pb, pa), cmp.Compare(a.port, b.port))
	})
	for _, k := range keys[:min(len(keys), maxTimelines)] {
		tl := c.series[k]
		tl.From, tl.To = c.rep.From, c.rep.To
		c.rep.Timelines = append(c.rep.Timelines, *tl)
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
