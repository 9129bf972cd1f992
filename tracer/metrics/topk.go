package metrics

import (
	"cmp"
	"slices"
)

// Bounds of the port counters' bookkeeping, per series family.
const (
	// trackedPorts is the capacity of the heavy-hitter summary that ranks
	// ports: the Space-Saving algorithm (Metwally et al., 2005) keeps the
	// counts of at most this many ports, and any port that is more than
	// 1/trackedPorts of a family's observations is among them.
	trackedPorts = 64
	// retiredPorts bounds the remembered values of ports that lost their
	// label, so that a port coming back continues its series. A port whose
	// value had to be forgotten never gets a label again (it is counted in
	// other): starting its series anew could look to Prometheus like a
	// series that kept growing, and lose what it had counted.
	retiredPorts = 256
)

// portCounter counts observations by port for one series family (one
// syscall, errno and extra label): at most k ports have a series of their
// own, the rest are counted in other. Every series only grows: a port's
// series counts what happened while it held a label, other counts the rest,
// and together they count everything.
//
// The first k ports seen get a label at once; after that, rebalance gives
// the labels to the k busiest ports of the summary, taking them from
// labelled ports the summary no longer ranks there (their series end).
type portCounter struct {
	top     spaceSaving
	labeled map[uint16]uint64
	retired map[uint16]uint64
	barred  *[65536 / 64]uint64 // ports whose retired value was forgotten
	other   uint64
}

func (c *portCounter) isBarred(p uint16) bool {
	return c.barred != nil && c.barred[p/64]&(1<<(p%64)) != 0
}

func newPortCounter() *portCounter {
	return &portCounter{labeled: map[uint16]uint64{}}
}

func (c *portCounter) add(port uint16, k int) {
	c.top.add(port)
	if v, ok := c.labeled[port]; ok {
		c.labeled[port] = v + 1
		return
	}
	if len(c.labeled) < k && !c.isBarred(port) {
		c.labeled[port] = c.retired[port] + 1
		delete(c.retired, port)
		return
	}
	c.other++
}

// rebalance moves labels to the k busiest ports. A label changes hands
// only when the newcomer's count is strictly higher, so ties do not flap.
func (c *portCounter) rebalance(k int) {
	best := c.top.ranked()
	if len(best) > k {
		best = best[:k]
	}
	inBest := make(map[uint16]bool, len(best))
	var in []ssEntry // in the top k, without a label
	for _, e := range best {
		inBest[e.port] = true
		if _, ok := c.labeled[e.port]; !ok && !c.isBarred(e.port) {
			in = append(in, e)
		}
	}
	if len(in) == 0 {
		return
	}
	var out []ssEntry // labelled, not in the top k; least busy first
	for p := range c.labeled {
		if !inBest[p] {
			out = append(out, ssEntry{p, c.top.count(p)})
		}
	}
	slices.SortFunc(out, func(a, b ssEntry) int { return cmp.Or(cmp.Compare(a.n, b.n), cmp.Compare(a.port, b.port)) })
	j := 0
	for _, e := range in {
		if len(c.labeled) >= k {
			if j >= len(out) || e.n <= out[j].n {
				break
			}
			c.retire(out[j].port)
			j++
		}
		c.labeled[e.port] = c.retired[e.port]
		delete(c.retired, e.port)
	}
}

func (c *portCounter) retire(port uint16) {
	if c.retired == nil {
		c.retired = map[uint16]uint64{}
	}
	if len(c.retired) >= retiredPorts {
		if c.barred == nil {
			c.barred = new([65536 / 64]uint64)
		}
		for p := range c.retired {
			delete(c.retired, p)
			c.barred[p/64] |= 1 << (p % 64)
			break
		}
	}
	c.retired[port] = c.labeled[port]
	delete(c.labeled, port)
}

// clone copies the counts a scrape emits.
func (c *portCounter) clone() portCounts {
	pc := portCounts{other: c.other, ports: make([]ssEntry, 0, len(c.labeled))}
	for p, v := range c.labeled {
		pc.ports = append(pc.ports, ssEntry{p, v})
	}
	return pc
}

// portCounts is a copy of a portCounter's series.
type portCounts struct {
	ports []ssEntry
	other uint64
}

type ssEntry struct {
	port uint16
	n    uint64
}

// spaceSaving is the Space-Saving summary: exact counts while it has room;
// when full, a new port takes the place of the least counted one and
// inherits its count (an overestimate that lets a newly busy port rise).
type spaceSaving struct {
	counts map[uint16]uint64
}

func (s *spaceSaving) add(port uint16) {
	if s.counts == nil {
		s.counts = make(map[uint16]uint64, 8)
	}
	if n, ok := s.counts[port]; ok {
		s.counts[port] = n + 1
		return
	}
	if len(s.counts) < trackedPorts {
		s.counts[port] = 1
		return
	}
	minPort, minN := uint16(0), ^uint64(0)
	for p, n := range s.counts {
		if n < minN || (n == minN && p < minPort) {
			minPort, minN = p, n
		}
	}
	delete(s.counts, minPort)
	s.counts[port] = minN + 1
}

func (s *spaceSaving) count(port uint16) uint64 { return s.counts[port] }

// ranked lists the summary's ports, busiest first.
func (s *spaceSaving) ranked() []ssEntry {
	out := make([]ssEntry, 0, len(s.counts))
	for p, n := range s.counts {
		out = append(out, ssEntry{p, n})
	}
	slices.SortFunc(out, func(a, b ssEntry) int { return cmp.Or(cmp.Compare(b.n, a.n), cmp.Compare(a.port, b.port)) })
	return out
}

// topK returns the k items that come first by cmp, in order: a gauge is
// ranked afresh at each scrape, over as many items as the table has
// (100 000 destinations, say), so only the top is sorted. It reorders items.
func topK[T any](items []T, k int, cmp func(a, b T) int) []T {
	if len(items) <= k {
		slices.SortFunc(items, cmp)
		return items
	}
	if k == 0 {
		return nil
	}
	// items[:k] is a heap whose root is the last of the best k so far.
	h := items[:k]
	after := func(i, j int) bool { return cmp(h[i], h[j]) > 0 }
	down := func(i int) {
		for {
			l, r, m := 2*i+1, 2*i+2, i
			if l < k && after(l, m) {
				m = l
			}
			if r < k && after(r, m) {
				m = r
			}
			if m == i {
				return
			}
			h[i], h[m] = h[m], h[i]
			i = m
		}
	}
	for i := k/2 - 1; i >= 0; i-- {
		down(i)
	}
	for i := k; i < len(items); i++ {
		if cmp(items[i], h[0]) < 0 {
			h[0], items[i] = items[i], h[0]
			down(0)
		}
	}
	slices.SortFunc(h, cmp)
	return h
}
