package table

import "github.com/twtrace/twtrace/tracer"

// evictSample is how many random entries eviction compares.
const evictSample = 8

// evictOne drops one entry to make room, chosen among a few random ones
// (approximate LRU, as caches such as Redis do): a closed entry first, then
// the TIME_WAIT closest to its end, then the open socket untouched longest.
func (t *Table) evictOne(now int64) {
	best, bestRank, bestKey := int32(-1), 3, int64(0)
	for tries, seen := 0, 0; tries < evictSample*4 && seen < evictSample && t.slots.len() > 0; tries++ {
		i := int32(t.rand() % uint64(t.slots.len()))
		e := t.slots.at(i)
		if e.cookie == 0 {
			continue
		}
		seen++
		rank, key := 2, e.touched
		switch {
		case e.closed != 0:
			rank, key = 0, e.closed
		case e.state == tracer.StateTimeWait:
			rank, key = 1, e.expires
		}
		if best < 0 || rank < bestRank || (rank == bestRank && key < bestKey) {
			best, bestRank, bestKey = i, rank, key
		}
		if best >= 0 && bestRank == 0 {
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

// rand is xorshift64*: cheap, and deterministic for tests.
func (t *Table) rand() uint64 {
	t.rng ^= t.rng >> 12
	t.rng ^= t.rng << 25
	t.rng ^= t.rng >> 27
	return t.rng * 2685821657736338717
}
