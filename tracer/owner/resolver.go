// Package owner finds the processes that hold a socket, for sockets that
// existed before twtrace started and so were never seen being created. As
// ss -p does, it maps a socket inode to the processes that have an fd open
// on "socket:[INODE]", by reading /proc/<pid>/fd.
package owner

import (
	"cmp"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/procfs"
)

// DefaultMinInterval is the least time between two scans of /proc: a burst
// of lookups for unknown inodes costs one scan, not one each.
const DefaultMinInterval = 250 * time.Millisecond

// DefaultMaxInodes bounds the socket index, at some 60 bytes an entry.
const DefaultMaxInodes = 1 << 16

// Resolver maps socket inodes to their holders. It indexes every socket in
// one pass over /proc/*/fd and rescans only when asked about an inode it
// does not know, at most once per MinInterval (or per five scan durations,
// if longer). It is safe for concurrent use, but a lookup that scans holds
// it for the scan, some 40 µs per process: keep lookups off a path that
// must not stall, such as the ring buffer reader.
type Resolver struct {
	root        string
	fs          procfs.FS
	minInterval time.Duration
	maxInodes   int
	now         func() time.Time    // replaced by tests
	userName    func(uint32) string // replaced by tests

	mu       sync.Mutex
	idx      index
	procs    map[uint32]Process // details read since the last scan
	users    map[uint32]string
	lastScan time.Time // end of the last scan; zero: never scanned
	stats    ScanStats
	scanErr  error
}

// Option configures a Resolver.
type Option func(*Resolver)

// MinInterval sets the least time between two scans (DefaultMinInterval).
func MinInterval(d time.Duration) Option { return func(r *Resolver) { r.minInterval = d } }

// MaxInodes bounds the index (DefaultMaxInodes). Inodes a lookup asks for
// are always kept, so one scan can hold up to MaxInodes plus that batch.
func MaxInodes(n int) Option { return func(r *Resolver) { r.maxInodes = n } }

// NewResolver returns a Resolver reading procRoot: "/proc" in production,
// a fixture tree in tests. It does not scan until the first lookup.
func NewResolver(procRoot string, opts ...Option) (*Resolver, error) {
	fs, err := procfs.NewFS(procRoot)
	if err != nil {
		return nil, fmt.Errorf("open proc tree: %w", err)
	}
	r := &Resolver{
		root:        procRoot,
		fs:          fs,
		minInterval: DefaultMinInterval,
		maxInodes:   DefaultMaxInodes,
		now:         time.Now,
		userName:    lookupUser,
		procs:       make(map[uint32]Process),
		users:       make(map[uint32]string),
	}
	for _, o := range opts {
		o(r)
	}
	return r, nil
}

// Lookup returns the processes holding the socket inode. ok is false when
// none is known: the socket has no fd (TIME_WAIT, an unaccepted
// connection, a kernel socket), its holders exited, or the scan that would
// find it is held back by the rate limit.
func (r *Resolver) Lookup(inode uint32) (procs []Process, ok bool) {
	procs = r.LookupAll([]uint32{inode})[inode]
	return procs, len(procs) > 0
}

// LookupAll resolves many inodes with at most one scan, as a sock_diag
// snapshot needs. Inodes without a known holder are absent from the map.
func (r *Resolver) LookupAll(inodes []uint32) map[uint32][]Process {
	r.mu.Lock()
	defer r.mu.Unlock()
	missing := false
	for _, ino := range inodes {
		if _, ok := r.idx[ino]; !ok && ino != 0 {
			missing = true
			break
		}
	}
	if missing && r.mayScan() {
		// Every inode of the batch is kept, not only the missing ones: a
		// full index could otherwise drop a known one in favour of another.
		want := make(map[uint32]bool, len(inodes))
		for _, ino := range inodes {
			want[ino] = true
		}
		r.rescan(want) // on failure the old index stays: stale beats empty
	}
	out := make(map[uint32][]Process)
	for ino, hs := range r.holders(inodes) {
		ps := make([]Process, len(hs))
		for i := range hs {
			ps[i] = hs[i].Process
		}
		out[ino] = ps
	}
	return out
}

// A Holder is a process that holds a socket, and its fds on it: a socket
// shared across fork() (nginx's master and workers, a listener handed to
// a child) has several, and a process may have it dup'ed onto several fds.
type Holder struct {
	Process
	FDs []int // ascending
}

// LookupHolders is LookupAll with every holder's fds, as ss -p lists them.
func (r *Resolver) LookupHolders(inodes []uint32) map[uint32][]Holder {
	r.LookupAll(inodes) // scans if needed
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.holders(inodes)
}

// holders groups the index's fds of each inode by process, by pid; r.mu is
// held. A holder that exited since the scan is left out.
func (r *Resolver) holders(inodes []uint32) map[uint32][]Holder {
	out := make(map[uint32][]Holder)
	for _, ino := range inodes {
		if _, done := out[ino]; done {
			continue
		}
		var hs []Holder
		for _, ref := range r.idx[ino] {
			if n := len(hs); n > 0 && hs[n-1].PID == ref.pid {
				hs[n-1].FDs = append(hs[n-1].FDs, int(ref.fd))
				continue
			}
			if p, err := r.process(ref.pid); err == nil {
				hs = append(hs, Holder{Process: p, FDs: []int{int(ref.fd)}})
			}
		}
		if len(hs) == 0 {
			continue
		}
		slices.SortFunc(hs, func(a, b Holder) int { return cmp.Compare(a.PID, b.PID) })
		for i := range hs {
			slices.Sort(hs[i].FDs)
		}
		out[ino] = hs
	}
	return out
}

// Forget drops an inode, so that the next lookup rescans for it: for a
// caller that saw the socket close and expects the inode to mean something
// else later (inode numbers wrap around).
func (r *Resolver) Forget(inode uint32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.idx, inode)
}

// Refresh rescans now, whatever the rate limit, and returns what it read.
func (r *Resolver) Refresh() (ScanStats, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rescan(nil)
	return r.stats, r.scanErr
}

// Stats returns what the last scan read, and its error.
func (r *Resolver) Stats() (ScanStats, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats, r.scanErr
}

// Process reads the details of one pid afresh.
func (r *Resolver) Process(pid uint32) (Process, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return readProcess(r.fs, pid, r.cachedUser)
}

// Container returns the id of the container pid runs in ("" for none),
// from its cgroups alone: cheaper than Process when that is all one needs.
func (r *Resolver) Container(pid uint32) (string, error) {
	p, err := r.fs.Proc(int(pid))
	if err != nil {
		return "", fmt.Errorf("process %d: %w", pid, err)
	}
	cgs, err := p.Cgroups()
	if err != nil {
		return "", fmt.Errorf("process %d cgroup: %w", pid, err)
	}
	_, id := pickCgroup(cgs)
	return id, nil
}

// scanDutyCycle bounds the share of time spent scanning: on a host where
// a scan takes longer than MinInterval, lookups of unknown inodes arriving
// without pause would otherwise keep a CPU busy reading /proc.
const scanDutyCycle = 5

// mayScan reports whether the rate limit lets a scan start now; r.mu is held.
func (r *Resolver) mayScan() bool {
	if r.lastScan.IsZero() {
		return true
	}
	gap := max(r.minInterval, scanDutyCycle*r.stats.Elapsed)
	return r.now().Sub(r.lastScan) >= gap
}

// rescan replaces the index; want lists inodes kept beyond maxInodes.
func (r *Resolver) rescan(want map[uint32]bool) {
	keep := func(idx index, ino uint32) bool { return want[ino] || len(idx) < r.maxInodes }
	idx, st, err := scan(r.root, keep)
	r.lastScan = r.now() // the gap runs from the end of the scan
	r.stats, r.scanErr = st, err
	if err != nil {
		return
	}
	r.idx = idx
	// Details are cached per scan: a pid reused by a new process is
	// noticed at the next scan at the latest.
	clear(r.procs)
}

// process returns the cached details of pid; r.mu is held.
func (r *Resolver) process(pid uint32) (Process, error) {
	if p, ok := r.procs[pid]; ok {
		return p, nil
	}
	p, err := readProcess(r.fs, pid, r.cachedUser)
	if err != nil {
		return Process{}, err
	}
	r.procs[pid] = p
	return p, nil
}

// cachedUser names a uid once per Resolver: os/user may ask NSS, which can
// be slow (LDAP), and a host has few distinct uids.
func (r *Resolver) cachedUser(uid uint32) string {
	if name, ok := r.users[uid]; ok {
		return name
	}
	name := r.userName(uid)
	r.users[uid] = name
	return name
}
