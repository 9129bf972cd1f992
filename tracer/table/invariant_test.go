package table

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/twtrace/twtrace/tracer/event"
)

// checkInvariants fails t when the table's counts and indexes disagree with
// its entries: Stats.TimeWait is the number of entries in TIME_WAIT, every
// one of them is in the 4-tuple index, the filter counts the index, and the
// eviction groups count the entries.
func checkInvariants(t *testing.T, tab *Table, step string) {
	t.Helper()
	checkCounts(t, tab, step, true)
}

// checkCounts is checkInvariants; the filter's 2^18 counters are summed only
// with buckets.
func checkCounts(t *testing.T, tab *Table, step string, buckets bool) {
	t.Helper()
	tw, indexed, grouped, live := 0, 0, 0, 0
	for i := range tab.slots.len() {
		e := tab.slots.at(int32(i))
		if e.cookie == 0 {
			continue
		}
		live++
		if e.state == event.StateTimeWait {
			tw++
			if e.flags&flagInTW == 0 {
				t.Fatalf("%s: TIME_WAIT entry %x not in the 4-tuple index", step, e.cookie)
			}
		} else if e.flags&(flagInTW|flagGone) != 0 {
			t.Fatalf("%s: entry %x in %v still flagged %b", step, e.cookie, e.state, e.flags)
		}
		if e.flags&flagInTW != 0 {
			indexed++
		}
		if e.flags&flagGrouped != 0 {
			grouped++
		}
		if e.flags&flagEnterPending != 0 && !slices.ContainsFunc(tab.enters, func(p pendingEnter) bool { return p.cookie == e.cookie }) {
			t.Fatalf("%s: entry %x waits for an enter no pending enter names", step, e.cookie)
		}
	}
	if tab.stats.TimeWait != tw {
		t.Fatalf("%s: Stats.TimeWait %d, entries in TIME_WAIT %d", step, tab.stats.TimeWait, tw)
	}
	if tw > live || live != len(tab.byCookie) {
		t.Fatalf("%s: %d TIME_WAIT of %d entries, %d by cookie", step, tw, live, len(tab.byCookie))
	}
	groups := 0
	for _, n := range tab.groupCount {
		groups += int(n)
	}
	if groups != grouped || grouped != live {
		t.Fatalf("%s: groups count %d of %d grouped, %d entries", step, groups, grouped, live)
	}
	if !buckets {
		return
	}
	sum := 0
	for _, n := range tab.twBuckets {
		sum += int(n)
	}
	if sum != indexed {
		t.Fatalf("%s: the filter counts %d of %d indexed", step, sum, indexed)
	}
}

// kernelModel is the kernel's side of a server that closes first, under
// clients that reuse a few 4-tuples: its TIME_WAIT sockets, and the events
// its tracepoint emitted that the stream has not delivered yet (the
// reconciler runs ahead of the stream).
type kernelModel struct {
	rng     *rand.Rand
	now     int
	cookie  uint64
	tw      map[int]kernelTW // by client port
	queue   []event.Event
	clients int
}

type kernelTW struct {
	cookie  uint64
	expires int // ms
}

func (k *kernelModel) client(port int) string { return "10.0.0.2:" + itoa(20000+port) }

// connect opens, serves and closes one connection from a client port: its
// SYN ends the server's TIME_WAIT on that 4-tuple, and the server's side
// ends in TIME_WAIT. The client's side is a connect()-made socket.
func (k *kernelModel) connect(port int) {
	server, client := "10.0.0.1:80", k.client(port)
	delete(k.tw, port) // the SYN took the TIME_WAIT over
	k.cookie += 2
	s, c := k.cookie, k.cookie+1
	k.now++
	at := k.now
	k.queue = append(k.queue,
		st(at, c, "10.0.0.2:0", "10.0.0.1:80", event.StateClose, event.StateSynSent, 9),
		st(at, s, server, client, event.StateListen, event.StateSynRecv, 0),
		st(at, s, server, client, event.StateSynRecv, event.StateEstablished, 0),
		st(at, c, client, server, event.StateSynSent, event.StateEstablished, 9),
		st(at+1, s, server, client, event.StateEstablished, event.StateFinWait1, 7),
		st(at+1, c, client, server, event.StateEstablished, event.StateCloseWait, 9),
		st(at+1, s, server, client, event.StateFinWait1, event.StateFinWait2, 7),
		st(at+1, c, client, server, event.StateCloseWait, event.StateLastAck, 9))
	fin := st(at+2, s, server, client, event.StateFinWait2, event.StateClose, 7)
	var tw event.Event
	event.InferTimeWait(&fin, &tw)
	k.queue = append(k.queue, fin, tw, st(at+2, c, client, server, event.StateLastAck, event.StateClose, 9))
	k.tw[port] = kernelTW{s, at + 2 + 60_000}
	k.now += 2
}

// expire drops the kernel's TIME_WAITs whose timers ran out.
func (k *kernelModel) expire() {
	for p, tw := range k.tw {
		if tw.expires <= k.now {
			delete(k.tw, p)
		}
	}
}

// snapshot is a complete TIME_WAIT-only dump of the kernel now.
func (k *kernelModel) snapshot() *Snapshot {
	s := twSnap(k.now, k.now+1)
	for p, tw := range k.tw {
		s.Sockets = append(s.Sockets, twSock(tw.cookie, "10.0.0.1:80", k.client(p), time.Duration(tw.expires-k.now)*time.Millisecond))
	}
	k.now += 2
	return s
}

// deliver applies up to n queued events to the table.
func (k *kernelModel) deliver(tab *Table, n int) {
	n = min(n, len(k.queue))
	tab.ApplyBatch(k.queue[:n], nil)
	k.queue = k.queue[n:]
}

// Random interleavings of the stream, dumps that run ahead of it, ticks and
// evictions keep the table's invariants after every operation, and once the
// stream is drained and a dump taken, the table's TIME_WAITs are the
// kernel's. Before the fix, a dump that showed a TIME_WAIT before the
// stream delivered its socket's last events left Stats.TimeWait one too
// high for good.
func TestTimeWaitInvariantUnderRandomOrder(t *testing.T) {
	for seed := range uint64(40) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			maxSockets := 0
			if seed%2 == 1 {
				maxSockets = 60 // eviction, of TIME_WAITs too
			}
			tab := New(Config{Derive: true, MaxSockets: maxSockets, Linger: 50 * time.Millisecond})
			k := &kernelModel{rng: rng, tw: map[int]kernelTW{}, clients: 20}
			for op := range 3000 {
				step := fmt.Sprintf("op %d", op)
				switch r := rng.IntN(100); {
				case r < 45:
					k.connect(rng.IntN(k.clients))
				case r < 75:
					k.deliver(tab, rng.IntN(20))
				case r < 85:
					tab.Load(k.snapshot(), nil)
				case r < 92:
					tab.Tick(at(k.now), nil)
				case r < 96:
					if len(k.queue) == 0 {
						tab.Drained(at(k.now), nil)
					}
				default:
					k.now += rng.IntN(20_000) // timers run out
					k.expire()
				}
				checkCounts(t, tab, step, op%200 == 0)
			}
			// The load stops: the stream catches up, closed entries go,
			// and a few rounds of reconciliation settle the rest.
			k.deliver(tab, len(k.queue))
			for range 4 {
				k.now += 1000
				k.expire()
				tab.Tick(at(k.now), nil)
				tab.Load(k.snapshot(), nil)
				tab.Drained(at(k.now+1000), nil)
				checkInvariants(t, tab, "after the load")
			}
			got, _ := tab.Sockets(Query{States: []event.State{event.StateTimeWait}}, at(k.now))
			if len(got) != len(k.tw) || tab.Stats().TimeWait != len(k.tw) {
				t.Fatalf("table %d TIME_WAIT (%d entries), kernel %d", tab.Stats().TimeWait, len(got), len(k.tw))
			}
			for _, s := range got {
				p := int(s.Dst.Port()) - 20000
				if kt, ok := k.tw[p]; !ok || kt.cookie != s.Cookie {
					t.Errorf("table TIME_WAIT %x to %v, kernel %+v", s.Cookie, s.Dst, kt)
				}
			}
		})
	}
}

// A dump that shows the new connection's TIME_WAIT before the stream has
// delivered its ESTABLISHED still ends the old TIME_WAIT on the 4-tuple as
// a reuse (the kernel holds one socket per 4-tuple), never as a kill.
func TestReuseSeenByDumpFirst(t *testing.T) {
	tab := New(Config{Derive: true})
	enterTW(tab, 0, 1, "127.0.0.1:80", "127.0.0.1:5000")
	// Connection 2 took the 4-tuple at 1.000 s and closed first too; the
	// dump at 1.010 s shows its TIME_WAIT, and not 1's.
	// 2's enter waits for the stream, which shows it below.
	out := tab.Load(twSnap(1010, 1011, twSock(2, "127.0.0.1:80", "127.0.0.1:5000", 60*time.Second)), nil)
	if len(out) != 1 || out[0].Cookie != 1 || out[0].TimeWait != event.TimeWaitReuse {
		t.Fatalf("dump derived %+v, want 1's reuse", out)
	}
	checkInvariants(t, tab, "after the dump")
	// The stream then delivers connection 2's life: history now.
	late := withInferred(
		st(1000, 2, "127.0.0.1:80", "127.0.0.1:5000", event.StateListen, event.StateSynRecv, 7),
		st(1000, 2, "127.0.0.1:80", "127.0.0.1:5000", event.StateSynRecv, event.StateEstablished, 7),
		st(1005, 2, "127.0.0.1:80", "127.0.0.1:5000", event.StateFinWait2, event.StateClose, 7),
	)
	if out := tab.ApplyBatch(late, nil); len(out) != 0 {
		t.Errorf("late events derived %+v", out)
	}
	if out := tab.Drained(at(2000), nil); len(out) != 0 {
		t.Errorf("drained: %+v, want nothing (1 was reused; the stream showed 2's enter)", out)
	}
	checkInvariants(t, tab, "after the stream")
	st := tab.Stats()
	if st.TimeWait != 1 || st.TimeWaitEnded[event.TimeWaitReuse] != 1 || st.TimeWaitEnded[event.TimeWaitKill] != 0 {
		t.Errorf("stats %+v", st)
	}
	if s, _ := tab.Socket(2, at(2000)); s.State != event.StateTimeWait || s.Owner != 7 {
		t.Errorf("socket 2 %+v: want TIME_WAIT, owner 7 from the stream", s)
	}
}

// A TIME_WAIT that a dump no longer finds, because a new SYN took it over,
// is a reuse once the stream delivers the new connection's ESTABLISHED:
// the dump's end waits for the stream.
func TestReuseArrivesAfterDump(t *testing.T) {
	tab := New(Config{Derive: true})
	enterTW(tab, 0, 1, "127.0.0.1:80", "127.0.0.1:5000")
	if out := tab.Load(twSnap(1010, 1011), nil); len(out) != 0 {
		t.Fatalf("dump derived %+v before the stream caught up", out)
	}
	out := tab.ApplyBatch([]event.Event{
		st(1000, 2, "127.0.0.1:80", "127.0.0.1:5000", event.StateListen, event.StateSynRecv, 7),
		st(1001, 2, "127.0.0.1:80", "127.0.0.1:5000", event.StateSynRecv, event.StateEstablished, 7),
	}, nil)
	if len(out) != 1 || out[0].Cookie != 1 || out[0].TimeWait != event.TimeWaitReuse {
		t.Fatalf("ESTABLISHED derived %+v, want 1's reuse", out)
	}
	if out := tab.Drained(at(3000), nil); len(out) != 0 {
		t.Errorf("drained derived %+v, want nothing more", out)
	}
	if st := tab.Stats(); st.TimeWait != 0 || st.TimeWaitEnded[event.TimeWaitKill] != 0 {
		t.Errorf("stats %+v", st)
	}
}
