package metrics

import (
	"strconv"
)

// LabelMode says which extra label, if any, the metrics carry.
type LabelMode uint8

// Label modes: --by-netns, --by-container.
const (
	LabelNone      LabelMode = iota
	LabelNetNS               // netns: the socket's network namespace inode
	LabelContainer           // container: the id of the owner's container
)

// Name is the label's name ("" for LabelNone).
func (m LabelMode) Name() string {
	switch m {
	case LabelNetNS:
		return "netns"
	case LabelContainer:
		return "container"
	}
	return ""
}

// otherValue is the value every label folds into past its bound.
const otherValue = "other"

// pidCacheMax bounds the pid → container cache; past it, it starts anew.
const pidCacheMax = 4096

// labeler gives values of the extra label a slot each, at most max of them.
// Slot 0 is "other" (or, with no extra label, the only slot). A value keeps
// its slot while it is seen, so its counters only grow; a slot idle for
// longer than idle is given back (the value's series end; if it returns,
// they start again from zero, which Prometheus reads as a counter reset).
type labeler struct {
	mode   LabelMode
	max    int
	idle   int64 // ns
	index  map[string]int
	values []string // by slot; values[0] is otherValue
	live   []bool   // by slot: held by a value
	seen   []int64  // by slot: Unix ns of the last observation
	free   []int
	folded uint64 // observations counted under other because every slot was taken

	// Hot-path caches, cleared whenever a slot is given back.
	byNetNS     map[uint32]int
	byPID       map[uint32]int
	containerOf func(pid uint32) string
}

func newLabeler(mode LabelMode, max int, idle int64, containerOf func(uint32) string) *labeler {
	return &labeler{
		mode: mode, max: max, idle: idle,
		index:       map[string]int{},
		values:      []string{otherValue},
		live:        []bool{true},
		seen:        []int64{0},
		byNetNS:     map[uint32]int{},
		byPID:       map[uint32]int{},
		containerOf: containerOf,
	}
}

// netnsSlot returns the slot of a namespace inode, giving it one if it can.
func (l *labeler) netnsSlot(ino uint32, now int64, count bool) int {
	if s, ok := l.byNetNS[ino]; ok {
		return l.touch(s, now, count)
	}
	v := "unknown"
	if ino != 0 {
		v = strconv.FormatUint(uint64(ino), 10)
	}
	s := l.slotOf(v)
	if len(l.byNetNS) >= pidCacheMax {
		clear(l.byNetNS)
	}
	l.byNetNS[ino] = s
	return l.touch(s, now, count)
}

// pidSlot returns the slot of the container a process runs in.
func (l *labeler) pidSlot(pid uint32, now int64) int {
	if s, ok := l.byPID[pid]; ok {
		return l.touch(s, now, true)
	}
	v := ""
	if pid != 0 && l.containerOf != nil {
		v = l.containerOf(pid)
	}
	s := l.slotOf(v)
	if len(l.byPID) >= pidCacheMax {
		clear(l.byPID)
	}
	l.byPID[pid] = s
	return l.touch(s, now, true)
}

// touch marks a slot seen; an observation landing in other is a fold.
func (l *labeler) touch(s int, now int64, count bool) int {
	if s == 0 && count {
		l.folded++
	}
	l.seen[s] = now
	return s
}

// slotOf finds or assigns the slot of a value; 0 when none is left.
func (l *labeler) slotOf(v string) int {
	if v == otherValue {
		return 0 // a value spelled like the fold is the fold
	}
	if s, ok := l.index[v]; ok {
		return s
	}
	var s int
	switch {
	case len(l.free) > 0:
		s = l.free[len(l.free)-1]
		l.free = l.free[:len(l.free)-1]
		l.values[s], l.live[s] = v, true
	case len(l.values)-1 < l.max:
		s = len(l.values)
		l.values = append(l.values, v)
		l.live = append(l.live, true)
		l.seen = append(l.seen, 0)
	default:
		return 0
	}
	l.index[v] = s
	return s
}

// expire gives back the slots not seen since now-idle and returns them.
func (l *labeler) expire(now int64) []int {
	var gone []int
	for s := 1; s < len(l.values); s++ {
		if !l.live[s] || now-l.seen[s] <= l.idle {
			continue
		}
		delete(l.index, l.values[s])
		l.values[s], l.live[s] = "", false
		l.free = append(l.free, s)
		gone = append(gone, s)
	}
	if len(gone) > 0 {
		clear(l.byNetNS)
		clear(l.byPID)
	}
	return gone
}

// inUse is how many values hold a slot of their own.
func (l *labeler) inUse() int { return len(l.index) }

// resetPIDs forgets the pid → container cache: pids are reused.
func (l *labeler) resetPIDs() { clear(l.byPID) }
