package demo

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/twtrace/twtrace/tracer/advice"
	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/stream"
	"github.com/twtrace/twtrace/tracer/text"
)

func TestLessons(t *testing.T) {
	want := []string{"restart-too-fast", "old-version-without-reuseaddr", "port-held", "who-closes-first",
		"client-churn", "close-wait-leak", "zero-downtime-restart"}
	ls := Lessons()
	if len(ls) != len(want) {
		t.Fatalf("%d lessons, want %d", len(ls), len(want))
	}
	for i, l := range ls {
		if l.Name != want[i] || l.Summary == "" || l.Moral == "" || l.run == nil {
			t.Errorf("lesson %d: %q (summary %q), want %q with a summary, a moral and a script", i, l.Name, l.Summary, want[i])
		}
		if f, ok := Find(l.Name); !ok || f != l {
			t.Errorf("Find(%q) = %v, %v", l.Name, f, ok)
		}
	}
	if _, ok := Find("restart"); ok {
		t.Error("Find found a lesson by a prefix")
	}
}

func ev(ns uint32, kind event.Kind, port uint16) event.Event {
	return event.Event{Kind: kind, NetNS: ns, Time: time.Now(), Src: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)}
}

func TestRecorderWait(t *testing.T) {
	r := newRecorder(7)
	on := func(port uint16) matcher { return func(e *event.Event) bool { return e.Src.Port() == port } }
	r.sink([]event.Event{ev(7, event.KindBind, 1), ev(8, event.KindBind, 2)}) // the other namespace's is dropped
	from := r.mark()
	if from != 1 {
		t.Fatalf("mark %d after one event of the namespace, want 1", from)
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		r.sink([]event.Event{ev(7, event.KindBind, 2), ev(8, event.KindBind, 2)})
		time.Sleep(20 * time.Millisecond)
		r.sink([]event.Event{ev(7, event.KindBind, 2)})
	}()
	got, err := r.wait(context.Background(), from, 2, 5*time.Second, "two binds", on(2))
	if err != nil || len(got) != 2 {
		t.Fatalf("wait: %d events, %v", len(got), err)
	}
	if got, err := r.wait(context.Background(), from, 1, time.Second, "", on(1)); err == nil {
		t.Errorf("wait from the mark found an event before it: %v", got)
	}
	r.sink([]event.Event{{Kind: event.KindLost, Lost: 3}})
	_, err = r.wait(context.Background(), from, 3, 30*time.Millisecond, "three binds", on(2))
	var ns *errNotSeen
	if !errors.As(err, &ns) || err.Error() != "the tracer did not show three binds within 30ms (2 of 3); the kernel could not deliver 3 events" {
		t.Errorf("wait that runs out: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.wait(ctx, from, 3, time.Second, "", on(2)); !errors.Is(err, context.Canceled) {
		t.Errorf("wait after cancel: %v", err)
	}
	r.end(errors.New("ring buffer closed"))
	if _, err := r.wait(context.Background(), from, 3, time.Second, "three binds", on(2)); err == nil ||
		!strings.Contains(err.Error(), "waiting for three binds: ring buffer closed") {
		t.Errorf("wait after the session ended: %v", err)
	}
	if n := len(r.count(0, on(2))); n != 2 {
		t.Errorf("count = %d, want 2", n)
	}
}

func TestTextNarratorShow(t *testing.T) {
	var b bytes.Buffer
	n := NewTextNarrator(&b, TextOptions{Location: time.UTC})
	e := event.Event{Kind: event.KindBind, Time: time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC), PID: 42,
		Comm: event.MakeComm("new-server"), Src: netip.MustParseAddrPort("127.0.0.1:9000"), Ret: -int32(unix.EADDRINUSE), FD: 5}
	for _, l := range []Line{
		{Kind: LineTitle, Lesson: "x", Text: "what it shows"},
		{Kind: LineStep, Step: 2, Text: "A server starts."},
		{Kind: LineSay, Text: "It binds."},
		{Kind: LineEvent, Event: &e},
		{Kind: LineDone, Text: "The moral."},
	} {
		if err := n.Show(l); err != nil {
			t.Fatal(err)
		}
	}
	want := "twtrace demo x: what it shows\n\n2. A server starts.\n   It binds.\n" +
		"   > 03:04:05.006 42 new-server      127.0.0.1:9000                    !bind EADDRINUSE no reuseaddr fd=5\n" +
		"\nWhat it shows: The moral.\n"
	if b.String() != want {
		t.Errorf("narration:\n%s\nwant:\n%s", b.String(), want)
	}
	// The event's words are the ones package text renders.
	if !strings.Contains(b.String(), text.Addr(e.Src)+" ") || !strings.Contains(b.String(), string(text.AppendSummary(nil, &e))) {
		t.Error("the quoted event is not in package text's words")
	}
}

func TestTextNarratorVerdict(t *testing.T) {
	now := time.Now()
	f := &advice.PortFacts{Port: 9000, Now: now, Sockets: []advice.Socket{{
		State: event.StateListen, Family: event.FamilyIPv4, Local: netip.MustParseAddrPort("127.0.0.1:9000"),
		Reuse: event.ReuseKnown | event.ReuseAddr, UIDKnown: true,
		Holders: []advice.Holder{{PID: 41, Comm: "old-server", User: "root"}},
	}}}
	r := advice.DiagnosePort(f, advice.Attempt{Addr: netip.MustParseAddrPort("127.0.0.1:9000"), Options: advice.ReuseAddr})
	var b, head bytes.Buffer
	n := NewTextNarrator(&b, TextOptions{})
	if err := n.Show(Line{Kind: LineVerdict, Report: &r, Text: "twtrace why 9000"}); err != nil {
		t.Fatal(err)
	}
	if err := stream.WriteVerdict(&head, &r, "     ", false); err != nil {
		t.Fatal(err)
	}
	want := "   $ twtrace why 9000\n" + head.String() + "     first fix: " + r.Fixes[0].Text + "\n"
	if b.String() != want {
		t.Errorf("verdict:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	fd := advice.Finding{Code: "TW302", Summary: "it leaks", Fixes: []advice.Fix{{Text: "close it"}}, NotFixes: []string{"no sysctl"}}
	if err := n.Show(Line{Kind: LineFinding, Finding: &fd, Text: "twtrace advise"}); err != nil {
		t.Fatal(err)
	}
	if want := "   $ twtrace advise\n     TW302 it leaks\n     first fix: close it\n     not a fix: no sysctl\n"; b.String() != want {
		t.Errorf("finding:\n%q\nwant\n%q", b.String(), want)
	}
}

func TestCountdown(t *testing.T) {
	var b bytes.Buffer
	n := NewTextNarrator(&b, TextOptions{})
	ended := make(chan struct{})
	go func() { time.Sleep(30 * time.Millisecond); close(ended) }()
	skip, err := n.Countdown(context.Background(), time.Now().Add(42*time.Second), ended)
	if skip || err != nil || !strings.HasPrefix(b.String(), "   TIME_WAIT ends in 4") || !strings.HasSuffix(b.String(), "s\n") {
		t.Errorf("countdown ended by the tracer: skip %v, err %v, %q", skip, err, b.String())
	}
	// On a terminal, a key press ends it: the line is rewritten, then cleared.
	pr, pw := io.Pipe()
	b.Reset()
	n = NewTextNarrator(&b, TextOptions{Terminal: true, Keys: pr, KeysTerminal: true})
	go func() { time.Sleep(250 * time.Millisecond); io.WriteString(pw, "\n") }()
	skip, err = n.Countdown(context.Background(), time.Now().Add(time.Minute), make(chan struct{}))
	if !skip || err != nil || !strings.Contains(b.String(), "\r   TIME_WAIT ends in 59.") ||
		!strings.Contains(b.String(), "(Enter ends it now)") || !strings.HasSuffix(b.String(), "\r\x1b[K") {
		t.Errorf("countdown ended by a key: skip %v, err %v, %q", skip, err, b.String())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := n.Countdown(ctx, time.Now().Add(time.Minute), make(chan struct{})); !errors.Is(err, context.Canceled) {
		t.Errorf("countdown after cancel: %v", err)
	}
}

func TestPause(t *testing.T) {
	pr, pw := io.Pipe()
	n := NewTextNarrator(io.Discard, TextOptions{Step: true, Keys: pr})
	done := make(chan error)
	go func() { done <- n.Pause(context.Background()) }()
	select {
	case err := <-done:
		t.Fatalf("Pause returned before a key: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	io.WriteString(pw, "\n")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	pw.Close() // the end of the keys: no more pauses
	for range 2 {
		if err := n.Pause(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if n.opt.Step {
		t.Error("still pausing after the end of the keys")
	}
	if err := NewTextNarrator(io.Discard, TextOptions{}).Pause(context.Background()); err != nil {
		t.Errorf("Pause without --step: %v", err)
	}
}

func TestAgentUsage(t *testing.T) {
	a := &agentProc{role: "x", lns: map[string]*listener{}}
	for _, tc := range []struct {
		cmd, want string
	}{
		{"frob", "err usage unknown command frob"},
		{"listen L", "err usage listen takes 3 arguments"},
		{"listen L 127.0.0.1 plain", "err usage listen ID ADDR:PORT OPTIONS"},
		{"listen L 127.0.0.1:9000 sideways", "err usage listen ID ADDR:PORT OPTIONS"},
		{"serve L greet", "err usage no listener L"},
		{"serve L shout", "err usage serve ID greet|wait|leak"},
		{"stop L", "err usage no listener L"},
		{"conn nowhere client-first", "err usage not an ip:port"},
		{"churn 127.0.0.1:9000 0 client-first", "err usage churn ADDR:PORT N MODE"},
		{"load 127.0.0.1:9000 0", "err usage load ADDR:PORT PERIOD_MS"},
		{"loadstop", "err usage no load runs"},
		{"loadpeek", "err usage no load runs"},
	} {
		if got := a.do(strings.Fields(tc.cmd)); !strings.HasPrefix(got, tc.want) {
			t.Errorf("%q: %q, want %q", tc.cmd, got, tc.want)
		}
	}
	if got := errReply(&sysErr{"connect", unix.EADDRNOTAVAIL}); got != "err connect EADDRNOTAVAIL" {
		t.Errorf("errReply = %q", got)
	}
	if got := errReply(&sysErr{"read", errors.New("closed before the greeting")}); got != "err read closed_before_the_greeting" {
		t.Errorf("errReply = %q", got)
	}
	var out bytes.Buffer
	if code := a.serve(strings.NewReader("frob\n\nexit\nfrob\n"), &out); code != 0 ||
		out.String() != "err usage unknown command frob\nok\n" {
		t.Errorf("serve: exit %d, %q", code, out.String())
	}
}

func TestRefusal(t *testing.T) {
	err := error(&refusal{Call: "bind", Errno: "EADDRINUSE"})
	if r, ok := refused(err); !ok || r.Error() != "bind() failed with EADDRINUSE" {
		t.Errorf("refused(%v) = %v, %v", err, r, ok)
	}
	if _, ok := refused(errors.New("other")); ok {
		t.Error("a plain error taken for a refusal")
	}
}
