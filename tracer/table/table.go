// Package table keeps the live table of TCP sockets that twtrace shows: every
// socket seen, keyed by its socket cookie, with its state, owner, endpoints,
// network namespace and a bounded timeline of transitions, TIME_WAIT included
// from its inferred birth to its end.
//
// The table consumes the event stream and kernel snapshots; it never reads
// the kernel itself. In live mode (Derive) it also produces the TIME_WAIT
// events the kernel does not report (reuse, expire, kill); a replayed capture
// already contains them, and the table only applies them.
//
// Entries live in one slab of pointer-free structs indexed by cookie, so that
// 100 000 sockets cost little memory and nothing to the garbage collector's
// marking.
package table

import (
	"net/netip"
	"sync"
	"time"

	"github.com/twtrace/twtrace/tracer/event"
)

// Config sizes a Table.
type Config struct {
	// MaxSockets caps the entries; past it the least useful entry is
	// evicted (and counted). 0 means DefaultMaxSockets.
	MaxSockets int
	// Linger is how long a closed socket stays, so that a view can still
	// show how it ended. 0 means DefaultLinger.
	Linger time.Duration
	// Derive makes the table produce the TIME_WAIT events the kernel does
	// not report. Set it for live tracing, not for replay.
	Derive bool
}

// Defaults.
const (
	DefaultMaxSockets = 1 << 17 // ~21 MiB of table; twtrace stays under 64 MiB resident
	DefaultLinger     = 5 * time.Second
	TimelineLen       = 6 // transitions kept per socket; older ones are dropped (and counted)
)

// Sources of a socket's information (a bit set).
const (
	fromTrace uint8 = 1 << iota // seen in the event stream
	fromDiag                    // seen in a sock_diag snapshot
)

// Entry flags.
const (
	flagTWConfirmed  uint16 = 1 << iota // the TIME_WAIT was seen by sock_diag
	flagListener                        // in the listener index
	flagInTW                            // in the TIME_WAIT 4-tuple index
	flagClient                          // made by connect() (see Table.side)
	flagServer                          // accepted, or a listener (see Table.side)
	flagGrouped                         // counted in its eviction group
	flagGone                            // TIME_WAIT a complete dump no longer has: its end is pending
	flagFinWait2                        // TIME_WAIT whose mini-socket a dump showed in substate FIN_WAIT2
	flagEnterPending                    // TIME_WAIT a dump found first: its enter waits for the stream (see endPending)
)

// step is one timeline step packed in 8 bytes: when the state was entered,
// in Unix microseconds (0: unknown), shifted left 4 bits, and the state.
type step uint64

func mkStep(atNS int64, s event.State) step {
	return step(uint64(atNS/1000)<<4 | uint64(s&0xf))
}

// at returns when the step began, in Unix ns (µs precision); 0 when unknown.
func (s step) at() int64 { return int64(s>>4) * 1000 }

func (s step) state() event.State { return event.State(s & 0xf) }

// slab stores entries in fixed chunks: growing never copies or doubles the
// table, and no chunk holds a pointer for the garbage collector to scan.
type slab struct {
	chunks []*[chunkLen]entry
	n      int32
}

const (
	chunkBits = 12
	chunkLen  = 1 << chunkBits
)

func (s *slab) at(i int32) *entry { return &s.chunks[i>>chunkBits][i&(chunkLen-1)] }

func (s *slab) len() int { return int(s.n) }

// grow adds a slot and returns its index.
func (s *slab) grow() int32 {
	if int(s.n) == len(s.chunks)*chunkLen {
		s.chunks = append(s.chunks, new([chunkLen]entry))
	}
	s.n++
	return s.n - 1
}

// entry is one socket. It holds no pointers.
type entry struct {
	cookie   uint64
	since    int64 // entered the current state, Unix ns; 0: unknown
	touched  int64 // last update, Unix ns
	expires  int64 // TIME_WAIT: when it ends, Unix ns
	closed   int64 // reached CLOSE (or ended TIME_WAIT), Unix ns; 0: open
	src, dst [16]byte
	sport    uint16
	dport    uint16
	netns    uint32
	owner    uint32
	inode    uint32
	gen      uint32 // reconciliation generation that last saw it
	gidx     int32  // its eviction group (index into Table.groupCount)
	comm     event.Comm
	family   event.Family
	state    event.State
	source   uint8
	nsteps   uint8
	flags    uint16
	reuse    event.Reuse // SO_REUSEADDR/SO_REUSEPORT, when read
	steps    [TimelineLen]step
}

// Stats counts what the table did, including what it had to drop.
type Stats struct {
	Sockets          int    // entries now
	TimeWait         int    // of which in TIME_WAIT (kept by setState and remove, nowhere else)
	Evicted          uint64 // entries dropped because MaxSockets was reached
	TimelineDropped  uint64 // transitions dropped from full timelines
	OutOfOrder       uint64 // events older than the state they would replace
	Lost             uint64 // events the kernel reported lost
	Reconciliations  uint64
	TimeWaitEnded    [5]uint64 // by event.TimeWaitOp: expire, reuse, kill
	TimeWaitObserved uint64    // TIME_WAIT sockets first seen by sock_diag, not inferred
	Untracked        uint64    // kernel sockets the last snapshot found with the table full (never evicted for)
}

// Table is the socket table. Its methods are safe for concurrent use: one
// writer (the pipeline) and any number of readers (views, metrics).
type Table struct {
	mu sync.RWMutex
	tables
}

// tables is everything a Table holds, apart from its lock: Reset replaces it.
type tables struct {
	cfg Config

	slots    slab
	free     []int32
	byCookie map[uint64]int32
	cache    [cacheLen]cacheSlot // in front of byCookie
	// listeners maps (netns, port) to the slot of a LISTEN socket, for the
	// owner of accepted sockets whose listener predates the tracer.
	listeners map[portKey]int32
	// tw maps a hash of (netns, src, dst) to the cookie of a TIME_WAIT entry,
	// to recognise a new connection that takes over its 4-tuple; twBuckets
	// counts the entries per bucket of the same hash, a cheap filter in front.
	tw        map[uint64]uint64
	twBuckets *[twBuckets]uint32

	ports map[portKey]*PortCounters
	// groupIdx numbers the eviction groups; groupCount counts their entries.
	groupIdx   map[portKey]int32
	groupCount []int32
	// lastPort caches the last counters looked up: a burst of events is
	// mostly about one service port.
	lastKey  portKey
	lastPort *PortCounters

	// served are the ports listeners had (closed ones too) and bind() named,
	// by namespace: a socket on one is a server's (see side).
	served map[portKey]struct{}
	// ranges are the namespaces' ip_local_port_range (SetPortRange).
	ranges map[uint32]PortRange

	// streamAt: the stream has delivered what the kernel did before it (Unix
	// ns); pending are the TIME_WAIT ends that wait for it (see endPending).
	streamAt int64
	pending  []pendingEnd
	enters   []pendingEnter // TIME_WAIT enters a dump found, waiting for the stream (endPending)

	gen        uint32
	reconciled map[uint32]int64  // namespace → Unix ns of its last complete dump
	containers map[uint32]string // owner pid → container id, from /proc (SetContainers)
	rng        uint64
	stats      Stats
}

type portKey struct {
	netns uint32
	port  uint16
}

// New returns an empty table.
func New(cfg Config) *Table {
	if cfg.MaxSockets <= 0 {
		cfg.MaxSockets = DefaultMaxSockets
	}
	if cfg.Linger <= 0 {
		cfg.Linger = DefaultLinger
	}
	return &Table{tables: newTables(cfg)}
}

func newTables(cfg Config) tables {
	return tables{
		cfg:        cfg,
		byCookie:   make(map[uint64]int32),
		listeners:  make(map[portKey]int32),
		tw:         make(map[uint64]uint64),
		twBuckets:  new([twBuckets]uint32),
		ports:      make(map[portKey]*PortCounters),
		groupIdx:   make(map[portKey]int32),
		served:     make(map[portKey]struct{}),
		ranges:     make(map[uint32]PortRange),
		reconciled: make(map[uint32]int64),
		rng:        0x9e3779b97f4a7c15,
	}
}

// Reset empties the table, as New made it (the namespaces' port ranges
// stay): a replay that seeks back rebuilds it from the capture's start.
func (t *Table) Reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	fresh := newTables(t.cfg)
	fresh.ranges = t.ranges
	t.tables = fresh
}

// twBuckets sizes the TIME_WAIT filter: 4 bytes each, 1 MiB. With the
// table at its default cap and every entry in TIME_WAIT, about two buckets in
// five hold one; with fewer TIME_WAIT entries, proportionally fewer.
const twBuckets = 1 << 18

// cacheLen sizes the lookup cache: a connection's events arrive within a
// few dozen of each other, and cookies are handed out in sequence, so their
// low bits spread them over the slots.
const cacheLen = 1024

type cacheSlot struct {
	cookie uint64
	slot   int32
}

// lookup returns the slot of a cookie, or -1.
func (t *Table) lookup(cookie uint64) int32 {
	c := &t.cache[cookie&(cacheLen-1)]
	if c.cookie == cookie && cookie != 0 {
		return c.slot
	}
	i, ok := t.byCookie[cookie]
	if !ok {
		return -1
	}
	c.cookie, c.slot = cookie, i
	return i
}

// insert returns a fresh slot for cookie, evicting an entry if the table is full.
func (t *Table) insert(cookie uint64, now int64) int32 {
	if len(t.byCookie) >= t.cfg.MaxSockets {
		t.evictOne(now)
	}
	var i int32
	if n := len(t.free); n > 0 {
		i = t.free[n-1]
		t.free = t.free[:n-1]
	} else {
		i = t.slots.grow()
	}
	*t.slots.at(i) = entry{cookie: cookie, touched: now}
	t.byCookie[cookie] = i
	t.cache[cookie&(cacheLen-1)] = cacheSlot{cookie, i}
	return i
}

// remove frees a slot and drops it from every index.
func (t *Table) remove(i int32) {
	e := t.slots.at(i)
	if e.state == event.StateTimeWait {
		t.stats.TimeWait--
	}
	t.leaveGroup(e)
	t.unindexListener(e)
	t.unindexTW(e)
	delete(t.byCookie, e.cookie)
	if c := &t.cache[e.cookie&(cacheLen-1)]; c.cookie == e.cookie {
		*c = cacheSlot{}
	}
	*e = entry{}
	t.free = append(t.free, i)
}

func (e *entry) addrPorts() (src, dst netip.AddrPort) {
	return netip.AddrPortFrom(addrFrom(e.family, &e.src), e.sport),
		netip.AddrPortFrom(addrFrom(e.family, &e.dst), e.dport)
}

func addrFrom(f event.Family, b *[16]byte) netip.Addr {
	if f == event.FamilyIPv4 {
		return netip.AddrFrom4([4]byte(b[:4]))
	}
	return netip.AddrFrom16(*b)
}

func putAddr(b *[16]byte, a netip.Addr) {
	if a.Is4() {
		*b = [16]byte{}
		v := a.As4()
		copy(b[:4], v[:])
		return
	}
	*b = a.As16()
}

// setEndpoints stores the endpoints of an event. A client's source port is 0
// until connect() has picked it: an unset port never overwrites a known one.
func (e *entry) setEndpoints(f event.Family, src, dst netip.AddrPort) {
	e.family = f
	if src.Addr().IsValid() && (src.Port() != 0 || e.sport == 0) {
		putAddr(&e.src, src.Addr())
		e.sport = src.Port()
	}
	if dst.Addr().IsValid() && (dst.Port() != 0 || e.dport == 0) {
		putAddr(&e.dst, dst.Addr())
		e.dport = dst.Port()
	}
}

// push appends a step to the timeline, dropping the oldest when full.
func (t *Table) push(e *entry, s event.State, at int64) {
	if int(e.nsteps) == len(e.steps) {
		copy(e.steps[:], e.steps[1:])
		e.nsteps--
		t.stats.TimelineDropped++
	}
	// Keep the timeline in time order even when events arrive out of order.
	i := int(e.nsteps)
	for i > 0 && at != 0 && e.steps[i-1].at() > at {
		i--
	}
	copy(e.steps[i+1:e.nsteps+1], e.steps[i:e.nsteps])
	e.steps[i] = mkStep(at, s)
	e.nsteps++
}

func (t *Table) indexListener(e *entry, i int32) {
	if e.flags&flagListener != 0 {
		return
	}
	t.listeners[portKey{e.netns, e.sport}] = i
	e.flags |= flagListener | flagServer
	t.serve(e.netns, e.sport)
}

func (t *Table) unindexListener(e *entry) {
	if e.flags&flagListener == 0 {
		return
	}
	k := portKey{e.netns, e.sport}
	if j, ok := t.listeners[k]; ok && t.slots.at(j).cookie == e.cookie {
		delete(t.listeners, k)
	}
	e.flags &^= flagListener
}

// tupleHash identifies a connection's 4-tuple in a namespace.
func tupleHash(netns uint32, src *[16]byte, sport uint16, dst *[16]byte, dport uint16) uint64 {
	const prime = 0x100000001b3
	h := uint64(0xcbf29ce484222325) ^ uint64(netns)
	h *= prime
	for _, b := range [2]*[16]byte{src, dst} {
		for k := 0; k < 16; k += 8 {
			v := uint64(b[k]) | uint64(b[k+1])<<8 | uint64(b[k+2])<<16 | uint64(b[k+3])<<24 |
				uint64(b[k+4])<<32 | uint64(b[k+5])<<40 | uint64(b[k+6])<<48 | uint64(b[k+7])<<56
			h = (h ^ v) * prime
			h ^= h >> 29
		}
	}
	h = (h ^ (uint64(sport)<<16 | uint64(dport))) * prime
	return h ^ h>>32
}

func (e *entry) tuple() uint64 {
	return tupleHash(e.netns, &e.src, e.sport, &e.dst, e.dport)
}

func (t *Table) indexTW(e *entry) {
	h := e.tuple()
	t.tw[h] = e.cookie
	if e.flags&flagInTW == 0 {
		t.twBuckets[h%twBuckets]++
		e.flags |= flagInTW
	}
}

func (t *Table) unindexTW(e *entry) {
	if e.flags&flagInTW == 0 {
		return
	}
	h := e.tuple()
	if c, ok := t.tw[h]; ok && c == e.cookie {
		delete(t.tw, h)
	}
	t.twBuckets[h%twBuckets]--
	e.flags &^= flagInTW
}

// mayBeTimeWait reports whether a TIME_WAIT entry could have this 4-tuple
// hash: most connections reach ESTABLISHED on a 4-tuple no TIME_WAIT holds,
// and a counter array answers that without a lookup in a large map.
func (t *Table) mayBeTimeWait(h uint64) bool { return t.twBuckets[h%twBuckets] != 0 }

// Stats returns the table's counters.
func (t *Table) Stats() Stats {
	t.mu.RLock()
	defer t.mu.RUnlock()
	s := t.stats
	s.Sockets = len(t.byCookie)
	return s
}

// Len returns the number of entries.
func (t *Table) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.byCookie)
}
