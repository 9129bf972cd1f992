package tui

import (
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twtrace/twtrace/tracer/event"

	"github.com/charmbracelet/x/ansi"

	"github.com/twtrace/twtrace/internal/sample"
	"github.com/twtrace/twtrace/tracer/table"
)

func events(n int) []event.Event {
	evs := make([]event.Event, n)
	for i := range evs {
		evs[i] = event.Event{Kind: event.KindState, Cookie: uint64(i + 1)}
	}
	return evs
}

func TestPendingBatchesAndCountsDrops(t *testing.T) {
	p := newPending(10)
	in := events(4)
	p.add(in)
	in[0].Cookie = 999 // the feed reuses its slice: pending must have copied
	p.add(events(4))
	p.add(events(5)) // 2 fit, 3 are dropped
	d := p.drain(nil)
	if len(d.events) != 10 || d.dropped != 3 || d.total != 13 {
		t.Fatalf("drain: %d events, %d dropped, total %d; want 10, 3, 13", len(d.events), d.dropped, d.total)
	}
	if d.events[0].Cookie != 1 {
		t.Errorf("pending kept the feed's slice: cookie %d", d.events[0].Cookie)
	}
	// The next drain starts afresh, in the buffer handed back.
	p.add(events(2))
	d2 := p.drain(d.events)
	if len(d2.events) != 2 || d2.dropped != 0 || d2.total != 15 {
		t.Fatalf("second drain: %d events, %d dropped, total %d; want 2, 0, 15", len(d2.events), d2.dropped, d2.total)
	}
	p.finish(nil)
	if d3 := p.drain(d2.events); !d3.done || len(d3.events) != 0 {
		t.Errorf("after finish: done %v, %d events", d3.done, len(d3.events))
	}
}

// TestPendingConcurrent: what the feed adds is either drained or counted
// as dropped, never lost silently (run with -race).
func TestPendingConcurrent(t *testing.T) {
	p := newPending(100)
	var wg sync.WaitGroup
	wg.Go(func() {
		for range 1000 {
			p.add(events(7))
		}
	})
	var got, dropped uint64
	var spare []event.Event
	for done := false; !done; {
		wg.Wait() // not before the last drain below: the loop ends after it
		d := p.drain(spare)
		got += uint64(len(d.events))
		dropped += d.dropped
		spare = d.events
		done = d.total == 7000
	}
	if got+dropped != 7000 {
		t.Errorf("drained %d + dropped %d != 7000 delivered", got, dropped)
	}
}

// TestSkippedEventsShow: events the UI could not keep leave a marked gap
// in the log and a red counter in the header.
func TestSkippedEventsShow(t *testing.T) {
	m := headless(t, 100, 30)
	m.addEvents(events(3), 1234)
	m = step(m, keyMsg("3"))
	screen := stripView(m)
	requireLine(t, screen, "1234 events not shown here: the UI fell behind")
	requireLine(t, screen, "UI skipped 1234")
}

func TestRingBound(t *testing.T) {
	r := newRing(5)
	r.pushEvents(events(3))
	if r.len() != 3 || r.at(0).ev.Cookie != 1 {
		t.Fatalf("len %d, first %d", r.len(), r.at(0).ev.Cookie)
	}
	r.pushEvents(events(4)) // cookies 1..4 again: 7 pushed, 5 kept
	if r.len() != 5 || r.total != 7 || r.first() != 2 {
		t.Fatalf("len %d total %d first %d; want 5 7 2", r.len(), r.total, r.first())
	}
	want := []uint64{3, 1, 2, 3, 4}
	for i, c := range want {
		if got := r.at(i).ev.Cookie; got != c {
			t.Errorf("at(%d) = %d, want %d", i, got, c)
		}
	}
	// A batch larger than the ring: only its tail is kept, all counted.
	r.pushEvents(events(12))
	if r.len() != 5 || r.total != 19 || r.at(0).ev.Cookie != 8 || r.at(4).ev.Cookie != 12 {
		t.Errorf("after a big batch: len %d total %d first %d last %d", r.len(), r.total, r.at(0).ev.Cookie, r.at(4).ev.Cookie)
	}
	r.push(&logEntry{skipped: 9})
	if s := r.snapshot(); len(s) != 5 || s[4].skipped != 9 || s[0].ev.Cookie != 9 {
		t.Errorf("snapshot: %+v", s)
	}
}

func TestModelLogIsBounded(t *testing.T) {
	m := headless(t, 100, 30)
	for range 5 {
		m = step(m, EventsMsg(events(1500)))
	}
	if n := m.events.ring.len(); n != DefaultLogSize {
		t.Errorf("log holds %d events, want %d", n, DefaultLogSize)
	}
	if m.seen != 7500+uint64(len(newSampleFeed().events)) {
		t.Errorf("seen %d", m.seen)
	}
}

func TestMeter(t *testing.T) {
	t0 := sample.Start
	var m meter
	m.observe(100, t0)
	if _, ok := m.get(); ok {
		t.Fatal("a rate from one reading")
	}
	m.observe(150, t0.Add(500*time.Millisecond)) // shorter than the window: held
	if _, ok := m.get(); ok {
		t.Fatal("a rate before a full window")
	}
	m.observe(300, t0.Add(2*time.Second))
	if r, ok := m.get(); !ok || r != 100 {
		t.Fatalf("rate %v %v, want 100/s", r, ok)
	}
	m.observe(300, t0.Add(2500*time.Millisecond))
	if r, _ := m.get(); r != 100 {
		t.Errorf("rate changed within a window: %v", r)
	}
	m.observe(310, t0.Add(4*time.Second))
	if r, _ := m.get(); r != 5 {
		t.Errorf("rate %v, want 5/s", r)
	}
	m.observe(10, t0.Add(5*time.Second)) // the counter restarted
	if _, ok := m.get(); ok {
		t.Error("a rate across a counter reset")
	}
	m.observe(20, t0.Add(6*time.Second))
	if r, ok := m.get(); !ok || r != 10 {
		t.Errorf("after the reset: %v %v, want 10/s", r, ok)
	}
	m.observe(30, t0) // the clock stepped back (a replay restarted)
	if _, ok := m.get(); ok {
		t.Error("a rate across a clock step back")
	}
}

// TestPortRates: transitions/s per port from successive queries.
func TestPortRates(t *testing.T) {
	m := headless(t, 100, 30)
	now := testNow
	m.opts.Clock = func() time.Time { return now }
	m.ctx.now = now
	m = m.Refresh()
	now = now.Add(2 * time.Second)
	m.ctx.now = now
	// Six transitions on 8080; the table counts service ports only, not
	// the client's ephemeral one.
	more := sample.Events()[1:10]
	for i := range more {
		more[i].Time = now
		more[i].Cookie += 0x100
	}
	m.tab.ApplyBatch(more, nil)
	m = m.Refresh()
	p, _ := m.ports.selected()
	if p.Port != 8080 {
		t.Fatalf("busiest port is %d", p.Port)
	}
	row := m.ports.rows[0]
	if !row.rateOK || row.rate != 3 {
		t.Errorf("8080: %v transitions/s (ok %v), want 3", row.rate, row.rateOK)
	}
	screen := stripView(m)
	requireLine(t, screen, "8080", "40.5s", " 3.0 ")
}

func TestParseFilter(t *testing.T) {
	for _, c := range []struct {
		in     string
		want   string
		broken bool
	}{
		{"8080", "port 8080", false},
		{":8080 8443", "port 8080, port 8443", false},
		{"tw", "TIME_WAIT", false},
		{"time-wait estab", "TIME_WAIT, ESTABLISHED", false},
		{"TCP_LISTEN,8080", "port 8080, LISTEN", false},
		{"pid:4120 fin_wait2", "FIN_WAIT2, pid 4120", false},
		{"", "", false},
		{"nginx", "comm nginx", false},
		{"sport:8080 dport:5432 fail bind EADDRINUSE", "sport 8080, dport 5432, bind(), failed calls, EADDRINUSE", false},
		{"listen", "LISTEN, listen()", false},
		{"estabished", "", true},
		{"pid:x", "", true},
		{"70000", "", true},
	} {
		f, err := parseFilter(c.in)
		if (err != nil) != c.broken {
			t.Errorf("%q: err %v", c.in, err)
			continue
		}
		if got := f.String(); got != c.want {
			t.Errorf("%q: %q, want %q", c.in, got, c.want)
		}
	}
}

func TestBadFilterStays(t *testing.T) {
	m := headless(t, 100, 30)
	for _, k := range []string{"/", "p", "i", "d", ":", "x", "enter"} {
		m = step(m, keyMsg(k))
	}
	if !m.filtering {
		t.Fatal("a bad filter closed the filter line")
	}
	requireLine(t, stripView(m), `"x" is not a process id`)
	m = step(m, keyMsg("esc"))
	if m.filtering || !m.filter.empty() {
		t.Error("esc did not cancel the filter line")
	}
}

func TestEventFilter(t *testing.T) {
	m := headless(t, 100, 30)
	m = step(m, keyMsg("3"))
	for _, k := range []string{"/", "4", "4", "3", "enter"} {
		m = step(m, keyMsg(k))
	}
	screen := stripView(m)
	requireLine(t, screen, "2 matching port 443")
	requireLine(t, screen, "!connect EADDRNOTAVAIL")
	requireLine(t, screen, "!LOST 17") // loss is never filtered away
	if len(m.events.seqs) != 2 {
		t.Errorf("%d events match port 443, want 2 (the connect and the loss)", len(m.events.seqs))
	}
}

// TestEventsScrollStopsFollowing: scrolled up, the selected event stays
// under the cursor while new events push old ones out of the ring.
func TestEventsScrollStopsFollowing(t *testing.T) {
	m := headless(t, 100, 30)
	m = step(m, keyMsg("3"))
	m = step(m, keyMsg("up"))
	m = step(m, keyMsg("up"))
	if m.events.follow {
		t.Fatal("still following after scrolling up")
	}
	sel := m.events.seqAt(m.events.grid.Cursor())
	m = step(m, EventsMsg(events(DefaultLogSize-10)))
	if got := m.events.seqAt(m.events.grid.Cursor()); got != sel {
		t.Errorf("cursor on entry %d, want %d", got, sel)
	}
	m = step(m, keyMsg("end"))
	if !m.events.follow {
		t.Error("end did not resume following")
	}
}

func stripView(m Model) string {
	return ansi.Strip(m.View().Content)
}

// TestSidesAndNamespaceRanges: the Remotes view measures a namespace's
// TIME_WAITs against that namespace's own port range, and marks with ? the
// endpoints of sockets taken for a client's by their port alone; the Ports
// view keeps a stopped server's port in the range on its own row, and says
// how many of the clients' sockets are guesses.
func TestSidesAndNamespaceRanges(t *testing.T) {
	m := headless(t, 220, 30)
	const other = 4026532999
	ap := netip.MustParseAddrPort
	m.tab.SetPortRange(other, table.PortRange{40000, 40009})
	var evs []event.Event
	for i := range 10 { // the namespace's whole range in TIME_WAIT towards one server
		src, dst := ap("10.1.0.5:"+itoa(40000+i)), ap("10.1.0.9:80")
		ev := event.Event{Kind: event.KindState, Time: testNow, Cookie: uint64(0x9000 + i), NetNS: other,
			Family: event.FamilyIPv4, Src: src, Dst: dst, Old: event.StateSynSent, New: event.StateEstablished}
		fin := ev
		fin.Old, fin.New = event.StateFinWait2, event.StateClose
		var tw event.Event
		event.InferTimeWait(&fin, &tw)
		evs = append(evs, ev, fin, tw)
	}
	m.tab.ApplyBatch(evs, nil)
	// Older than the tracer, in the host's namespace: a TIME_WAIT on a port
	// of the range nothing says more about, and one on a port a listener had.
	tw := func(cookie uint64, src, dst string) table.KernelSocket {
		return table.KernelSocket{Cookie: cookie, Family: event.FamilyIPv4, State: event.StateTimeWait,
			Src: ap(src), Dst: ap(dst), Expires: 30 * time.Second}
	}
	m.tab.Load(&table.Snapshot{NetNS: sampleNetNS, Start: testNow, End: testNow, Sockets: []table.KernelSocket{
		tw(0x9100, "127.0.0.1:45000", "127.0.0.1:8080"),
		{Cookie: 0x9101, Family: event.FamilyIPv4, State: event.StateListen, Src: ap("127.0.0.1:45002"), Dst: ap("0.0.0.0:0")},
		tw(0x9102, "127.0.0.1:45002", "127.0.0.1:51000"),
	}}, nil)
	m.tab.Apply(&event.Event{Kind: event.KindState, Time: testNow.Add(time.Millisecond), Cookie: 0x9101, NetNS: sampleNetNS,
		Family: event.FamilyIPv4, Src: ap("127.0.0.1:45002"), Dst: ap("0.0.0.0:0"), Old: event.StateListen, New: event.StateClose}, nil)
	m = m.Refresh()

	screen := stripView(m)
	requireLine(t, screen, "45002", "1") // not folded into ephem
	requireLine(t, screen, "ephem", "3 client sockets (1 guessed?), by remote: enter")

	m = step(m, keyMsg("4")).Refresh()
	screen = stripView(m)
	requireLine(t, screen, "vs each namespace's ip_local_port_range", "? client taken by its port")
	requireLine(t, screen, "10.1.0.9:80", "10", "100.0%")
	requireLine(t, screen, "127.0.0.1:8080 ?", "<0.1%")
	requireLine(t, screen, "10.0.0.9:5432", "1      1      2") // the sample's, untouched
	if strings.Contains(screen, "127.0.0.1:51000") {
		t.Errorf("a server's TIME_WAIT is listed as a remote:\n%s", screen)
	}
}
