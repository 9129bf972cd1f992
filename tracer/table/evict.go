package table

import "github.com/twtrace/twtrace/tracer/event"

// evictSample is how many random entries eviction compares.
const evictSample = 8

// evictOne drops one entry to make room, chosen among a few random ones
// (approximate LRU, as caches such as Redis do): a closed entry first; then
// an entry of the biggest group (a service port, or a namespace's client
// sockets), so that a flood on one port evicts its own sockets and not the
// few on the port a user is watching; within a group, the TIME_WAIT closest
// to its end, then the open socket untouched longest.
func (t *Table) evictOne(now int64) {
	type rank struct {
		closed bool
		group  int32 // size of the entry's group now (kept by joinGroup/leaveGroup)
		tw     bool
		key    int64 // closed: when; TIME_WAIT: expiry; else last touched
	}
	worse := func(a, b rank) bool { // a goes before b
		if a.closed != b.closed {
			return a.closed
		}
		if a.group != b.group {
			return a.group > b.group
		}
		if a.tw != b.tw {
			return a.tw
		}
		return a.key < b.key
	}
	best := int32(-1)
	var bestRank rank
	for tries, seen := 0, 0; tries < evictSample*4 && seen < evictSample && t.slots.len() > 0; tries++ {
		i := int32(t.rand() % uint64(t.slots.len()))
		e := t.slots.at(i)
		if e.cookie == 0 {
			continue
		}
		seen++
		r := rank{key: e.touched, group: t.groupCount[e.gidx]}
		switch {
		case e.closed != 0:
			r.closed, r.key = true, e.closed
		case e.state == event.StateTimeWait:
			r.tw, r.key = true, e.expires
		}
		if best < 0 || worse(r, bestRank) {
			best, bestRank = i, r
		}
		if bestRank.closed {
			break
		}
	}
	if best < 0 {
		// Sampling found only free slots: take any entry.
		for _, i := range t.byCookie {
			best = i
			break
		}
	}
	if best >= 0 {
		t.remove(best)
		t.stats.Evicted++
	}
}

// group is the entry's eviction group: its service port, or, for sockets
// connect() made, all of its namespace's. It is decided once, when the
// entry joins (evidence that comes later moves it in the views, not here).
func (t *Table) group(e *entry) portKey {
	if t.side(e).Client() {
		return portKey{e.netns, 0}
	}
	return portKey{e.netns, e.sport}
}

// joinGroup puts a new entry in its eviction group. A group is looked up
// once per socket; eviction then reads the count by index, no map.
func (t *Table) joinGroup(e *entry) {
	g := t.group(e)
	idx, ok := t.groupIdx[g]
	if !ok {
		idx = int32(len(t.groupCount))
		t.groupIdx[g] = idx
		t.groupCount = append(t.groupCount, 0)
	}
	e.gidx = idx
	e.flags |= flagGrouped
	t.groupCount[idx]++
}

// leaveGroup takes an entry out of its group's count.
func (t *Table) leaveGroup(e *entry) {
	if e.flags&flagGrouped != 0 {
		t.groupCount[e.gidx]--
		e.flags &^= flagGrouped
	}
}

// rand is xorshift64*: cheap, and deterministic for tests.
func (t *Table) rand() uint64 {
	t.rng ^= t.rng >> 12
	t.rng ^= t.rng << 25
	t.rng ^= t.rng >> 27
	return t.rng * 2685821657736338717
}
