package table

import (
	"testing"
	"time"

	"github.com/twtrace/twtrace/tracer/event"
)

// enterTW applies FIN_WAIT2->CLOSE and the inferred TIME_WAIT it implies.
func enterTW(tab *Table, ms int, cookie uint64, src, dst string) {
	e := st(ms, cookie, src, dst, event.StateFinWait2, event.StateClose, 42)
	var tw event.Event
	event.InferTimeWait(&e, &tw)
	tab.ApplyBatch([]event.Event{e, tw}, nil)
}

// withInferred is a stream of transitions as the reader delivers it: each
// followed by the TIME_WAIT enter it implies, if any.
func withInferred(evs ...event.Event) []event.Event {
	var out []event.Event
	for _, e := range evs {
		out = append(out, e)
		var tw event.Event
		if event.InferTimeWait(&e, &tw) {
			out = append(out, tw)
		}
	}
	return out
}

func twSnap(startMS, endMS int, socks ...KernelSocket) *Snapshot {
	return &Snapshot{NetNS: ns, Start: at(startMS), End: at(endMS), Complete: true, TimeWaitOnly: true, Sockets: socks}
}

func twSock(cookie uint64, src, dst string, left time.Duration) KernelSocket {
	return KernelSocket{Cookie: cookie, Family: event.FamilyIPv4, State: event.StateTimeWait, Src: ap(src), Dst: ap(dst), Expires: left}
}

func TestReconcileConfirmsAndCorrectsTimer(t *testing.T) {
	tab := New(Config{Derive: true})
	enterTW(tab, 0, 1, "127.0.0.1:80", "127.0.0.1:5000")
	// The kernel says 42 s are left at t=1s: the timer restarted (or the
	// socket was an orphaned FIN_WAIT2 first). The kernel wins.
	out := tab.Load(twSnap(1000, 1001, twSock(1, "127.0.0.1:80", "127.0.0.1:5000", 42*time.Second)), nil)
	if len(out) != 0 {
		t.Errorf("confirming derived %v", out)
	}
	s, _ := tab.Socket(1, at(1001))
	if !s.Confirmed || s.Source != "sock_diag+trace" || s.Remaining(at(1001)) != 42*time.Second {
		t.Errorf("after reconcile: confirmed %v source %s remaining %v", s.Confirmed, s.Source, s.Remaining(at(1001)))
	}
}

func TestReconcileDetectsEnds(t *testing.T) {
	tab := New(Config{Derive: true})
	enterTW(tab, 0, 1, "127.0.0.1:80", "127.0.0.1:5001")
	enterTW(tab, 0, 2, "127.0.0.1:80", "127.0.0.1:5002")
	enterTW(tab, 70_000, 3, "127.0.0.1:80", "127.0.0.1:5003") // enters during the dump below

	// At 60.5 s: socket 1 is gone near its expiry (expire), socket 2 is
	// still there; at 61 s socket 2 is gone too, 59 s early... it was killed.
	out := tab.Load(twSnap(60_400, 60_500, twSock(2, "127.0.0.1:80", "127.0.0.1:5002", 30*time.Second)), nil)
	if len(out) != 1 || out[0].Cookie != 1 || out[0].TimeWait != event.TimeWaitExpire || out[0].Source != event.SourceSockDiag {
		t.Fatalf("first reconcile derived %+v, want socket 1 expired", out)
	}
	out = tab.Load(twSnap(69_999, 70_100), nil)
	// The stream (its last event at 70 s) has not passed this dump by a
	// round trip yet: a reuse could still be on its way, so the end waits.
	if len(out) != 0 {
		t.Fatalf("second reconcile derived %+v before the stream caught up", out)
	}
	out = tab.Drained(at(70_300), nil)
	if len(out) != 1 || out[0].Cookie != 2 || out[0].TimeWait != event.TimeWaitKill || !out[0].Time.Equal(at(70_100)) {
		t.Fatalf("second reconcile derived %+v, want socket 2 killed at the dump's end", out)
	}
	// Socket 3 entered after the dump began: its absence proves nothing.
	if s, _ := tab.Socket(3, at(70_100)); s.State != event.StateTimeWait {
		t.Errorf("socket 3 ended by a dump that predates it: %v", s.State)
	}
	// An interrupted dump proves nothing either.
	tab2 := New(Config{Derive: true})
	enterTW(tab2, 0, 1, "127.0.0.1:80", "127.0.0.1:5001")
	snap := twSnap(30_000, 30_001)
	snap.Complete = false
	if out := tab2.Load(snap, nil); len(out) != 0 {
		t.Errorf("incomplete dump derived %v", out)
	}
}

func TestReconcileFindsUnseenTimeWait(t *testing.T) {
	tab := New(Config{Derive: true})
	// At start: existing TIME_WAIT sockets are state, not events.
	initial := twSnap(0, 1, twSock(7, "127.0.0.1:80", "127.0.0.1:6000", 50*time.Second))
	initial.Initial = true
	if out := tab.Load(initial, nil); len(out) != 0 {
		t.Errorf("initial snapshot derived %v", out)
	}
	s, _ := tab.Socket(7, at(1))
	if s.State != event.StateTimeWait || s.Source != "sock_diag" || s.Remaining(at(1)) != 50*time.Second || s.Owner != 0 {
		t.Errorf("pre-existing TIME_WAIT %+v", s)
	}
	// Later: one the stream missed (lost events) is an enter from sock_diag,
	// once the stream has delivered past the dump without showing it.
	out := tab.Load(twSnap(5000, 5001,
		twSock(7, "127.0.0.1:80", "127.0.0.1:6000", 46*time.Second),
		twSock(8, "127.0.0.1:80", "127.0.0.1:6001", 59*time.Second)), nil)
	if len(out) != 0 {
		t.Fatalf("derived %+v before the stream caught up with the dump", out)
	}
	if out = tab.Drained(at(5002), nil); len(out) != 0 {
		t.Fatalf("derived %+v within the slack a stream's batch may lag by", out)
	}
	out = tab.Drained(at(5400), nil)
	if len(out) != 1 || out[0].Cookie != 8 || out[0].TimeWait != event.TimeWaitEnter ||
		out[0].Source != event.SourceSockDiag || out[0].Remaining != 59*time.Second {
		t.Fatalf("derived %+v, want an enter of socket 8 from sock_diag", out)
	}
	if st := tab.Stats(); st.TimeWait != 2 || st.TimeWaitObserved != 1 {
		t.Errorf("stats %+v", st)
	}
}

// A dump that finds a TIME_WAIT before the stream has delivered the close
// that made it (the reader is woken in batches; the reconciler runs ahead)
// reports no enter of its own: the stream's, with its owner, is the one.
func TestDumpAheadOfTheStreamEntersOnce(t *testing.T) {
	tab := New(Config{Derive: true})
	est := st(0, 9, "127.0.0.1:80", "127.0.0.1:7000", event.StateSynRecv, event.StateEstablished, 42)
	tab.Apply(&est, nil)
	// The server closed at 1.000 s; the dump read the socket at 1.020 s,
	// before the stream delivered the close.
	if out := tab.Load(twSnap(1010, 1020, twSock(9, "127.0.0.1:80", "127.0.0.1:7000", 60*time.Second)), nil); len(out) != 0 {
		t.Fatalf("the dump derived %+v before the stream caught up", out)
	}
	batch := withInferred( // the stream's own enter with the close
		st(1000, 9, "127.0.0.1:80", "127.0.0.1:7000", event.StateEstablished, event.StateFinWait1, 42),
		st(1001, 9, "127.0.0.1:80", "127.0.0.1:7000", event.StateFinWait1, event.StateFinWait2, 42),
		st(1002, 9, "127.0.0.1:80", "127.0.0.1:7000", event.StateFinWait2, event.StateClose, 42),
	)
	out := tab.ApplyBatch(batch, nil)
	out = tab.Drained(at(2000), out)
	if len(out) != 0 {
		t.Errorf("the table derived %+v: a second enter of the TIME_WAIT the stream showed", out)
	}
	if s, _ := tab.Socket(9, at(2000)); s.State != event.StateTimeWait || s.Owner != 42 {
		t.Errorf("socket 9 %+v: want TIME_WAIT, owner 42", s)
	}
	if st := tab.Stats(); st.TimeWait != 1 || st.TimeWaitObserved != 0 {
		t.Errorf("stats %+v: want 1 TIME_WAIT, none observed by sock_diag alone", st)
	}
}

// A TIME_WAIT only dumps saw, that ends before the stream catches up with
// them (a reader far behind), is entered before it ends: no end without
// its enter, whether a later dump no longer finds it or a new connection
// takes its 4-tuple.
func TestDumpOnlyTimeWaitEntersBeforeItEnds(t *testing.T) {
	tab := New(Config{Derive: true})
	tab.Load(twSnap(1000, 1001, twSock(7, "127.0.0.1:80", "127.0.0.1:6000", 59*time.Second)), nil)
	tab.Load(twSnap(2000, 2001), nil) // gone: killed
	out := tab.Drained(at(5000), nil)
	if len(out) != 2 || out[0].Cookie != 7 || out[0].TimeWait != event.TimeWaitEnter ||
		out[1].TimeWait != event.TimeWaitKill {
		t.Fatalf("derived %+v, want 7's enter, then its kill", out)
	}
	checkInvariants(t, tab, "after the kill")

	tab = New(Config{Derive: true})
	tab.Load(twSnap(1000, 1001, twSock(8, "127.0.0.1:80", "127.0.0.1:6001", 59*time.Second)), nil)
	// A new connection takes the 4-tuple, and the stream shows it before
	// it has caught up with the dump.
	out = tab.ApplyBatch([]event.Event{
		st(1100, 9, "127.0.0.1:80", "127.0.0.1:6001", event.StateListen, event.StateSynRecv, 7),
		st(1100, 9, "127.0.0.1:80", "127.0.0.1:6001", event.StateSynRecv, event.StateEstablished, 7),
	}, nil)
	if len(out) != 2 || out[0].Cookie != 8 || out[0].TimeWait != event.TimeWaitEnter ||
		out[1].Cookie != 8 || out[1].TimeWait != event.TimeWaitReuse {
		t.Fatalf("derived %+v, want 8's enter, then its reuse", out)
	}
	if out = tab.Drained(at(5000), nil); len(out) != 0 {
		t.Errorf("drained %+v: 8's enter a second time", out)
	}
	if st := tab.Stats(); st.TimeWaitObserved != 1 {
		t.Errorf("stats %+v", st)
	}
	checkInvariants(t, tab, "after the reuse")
}

func TestTickExpiresUnreconciledNamespaces(t *testing.T) {
	tab := New(Config{Derive: true, Linger: time.Second})
	enterTW(tab, 0, 1, "127.0.0.1:80", "127.0.0.1:5001")
	if out := tab.Tick(at(59_000), nil); len(out) != 0 {
		t.Errorf("expired early: %v", out)
	}
	out := tab.Tick(at(60_100), nil)
	if len(out) != 1 || out[0].TimeWait != event.TimeWaitExpire || out[0].Source != event.SourceInferred {
		t.Fatalf("tick derived %+v, want an inferred expire", out)
	}
	// Closed entries linger, then go.
	if _, ok := tab.Socket(1, at(60_200)); !ok {
		t.Error("gone before its linger")
	}
	tab.Tick(at(61_500), nil)
	if _, ok := tab.Socket(1, at(61_500)); ok {
		t.Error("still there after its linger")
	}
	if tab.Len() != 0 {
		t.Errorf("%d entries left", tab.Len())
	}

	// In a reconciled namespace the timer does not decide: sock_diag does.
	tab2 := New(Config{Derive: true})
	enterTW(tab2, 0, 1, "127.0.0.1:80", "127.0.0.1:5001")
	tab2.Load(twSnap(59_000, 59_001, twSock(1, "127.0.0.1:80", "127.0.0.1:5001", 2*time.Second)), nil)
	if out := tab2.Tick(at(60_100), nil); len(out) != 0 {
		t.Errorf("timer expired a TIME_WAIT that sock_diag still had: %v", out)
	}
	// ...until sock_diag goes quiet for that namespace.
	if out := tab2.Tick(at(70_000), nil); len(out) != 1 {
		t.Errorf("stale reconciliation: derived %v, want the timer to take over", out)
	}
}
