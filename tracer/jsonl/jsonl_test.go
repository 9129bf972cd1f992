package jsonl

import (
	"bufio"
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/twtrace/twtrace/tracer/event"

	"github.com/charmbracelet/x/exp/golden"

	"github.com/twtrace/twtrace/internal/sample"
)

func encodeAll(evs []event.Event) []byte {
	var b []byte
	for i := range evs {
		b = Append(b, &evs[i])
	}
	return b
}

func TestEncodeGolden(t *testing.T) {
	golden.RequireEqual(t, encodeAll(sample.Events()))
}

// Every line is valid JSON with kind and ts, whatever the task names contain.
func TestEncodeIsValidJSON(t *testing.T) {
	sc := bufio.NewScanner(bytes.NewReader(encodeAll(sample.Events())))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("invalid JSON %q: %v", sc.Text(), err)
		}
		if m["kind"] == nil || m["ts"] == nil {
			t.Errorf("line without kind/ts: %s", sc.Text())
		}
	}
}

func TestRoundTrip(t *testing.T) {
	for i, ev := range sample.Events() {
		line := Append(nil, &ev)
		var back event.Event
		if err := Decode(line, &back); err != nil {
			t.Fatalf("event %d: decode %s: %v", i, line, err)
		}
		// Not carried by the schema: thread id, cgroup id.
		ev.TID, ev.CgroupID = 0, 0
		if back != ev {
			t.Errorf("event %d does not round-trip:\n got %+v\nwant %+v\nline %s", i, back, ev, line)
		}
	}
}

// The uid: "owner_uid" of a state or timewait record (the socket's), "uid"
// of a bind, connect or listen record (the task's), written when known and
// read back; records without them (older captures) read as unknown.
func TestUID(t *testing.T) {
	for _, ev := range sample.Events() {
		if ev.Kind == event.KindLost {
			continue
		}
		ev.TID, ev.CgroupID = 0, 0
		ev.UID, ev.UIDKnown = 1000, true
		line := Append(nil, &ev)
		key := `,"uid":1000,`
		if ev.Kind == event.KindState || ev.Kind == event.KindTimeWait {
			key = `,"owner_uid":1000,`
		}
		if !bytes.Contains(line, []byte(key)) || bytes.Count(line, []byte("uid")) != 1 {
			t.Errorf("%s record without %s once: %s", ev.Kind, key, line)
		}
		var back event.Event
		if err := Decode(line, &back); err != nil || back != ev {
			t.Errorf("%s with a uid does not round-trip: %v\n got %+v\nwant %+v", ev.Kind, err, back, ev)
		}
		if escaped := bytes.IndexByte(line, '\\') >= 0; agree(t, line) == escaped {
			t.Errorf("fast path %v for %s", !escaped, line)
		}
	}
	old := `{"kind":"bind","ts":"2026-11-25T09:30:01.2Z","pid":4300,"comm":"nginx","fd":6,"family":"ipv4","addr":"0.0.0.0",` +
		`"port":8080,"ret":-98,"errno":"EADDRINUSE","reuseaddr":false,"reuseport":false,"netns":4026531840}`
	var ev event.Event
	if err := Decode([]byte(old), &ev); err != nil || ev.UIDKnown || ev.UID != 0 {
		t.Errorf("a record without uid: %v, uid %d known %v", err, ev.UID, ev.UIDKnown)
	}
	root := `{"kind":"state","ts":"2026-11-25T09:30:00Z","sock":"1","family":"ipv4","saddr":"127.0.0.1","sport":1,` +
		`"daddr":"127.0.0.1","dport":2,"old":"CLOSE","new":"LISTEN","old_ms":null,"pid":1,"comm":"x","owner_pid":null,` +
		`"owner_comm":null,"owner_uid":0,"netns":1}`
	if err := Decode([]byte(root), &ev); err != nil || !ev.UIDKnown || ev.UID != 0 {
		t.Errorf("owner_uid 0 (root): %v, uid %d known %v", err, ev.UID, ev.UIDKnown)
	}
}

func TestStringEscaping(t *testing.T) {
	for in, want := range map[string]string{
		"plain":        `"plain"`,
		"q\"uote":      `"q\"uote"`,
		"back\\slash":  `"back\\slash"`,
		"\x1b[2J":      `"\u001b[2J"`,
		"tab\there":    `"tab\u0009here"`,
		"bad\xffutf8":  `"bad\ufffdutf8"`,
		"ünï":          `"ünï"`,
		"nul\x00after": `"nul"`,
	} {
		if got := string(appendString(nil, []byte(in))); got != want {
			t.Errorf("appendString(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{`not json`, "not a JSON object"},
		{`{"ts":"2026-01-01T00:00:00Z"}`, `missing "kind"`},
		{`{"kind":"bogus","ts":"2026-01-01T00:00:00Z"}`, `unknown kind "bogus"`},
		{`{"kind":"lost"}`, `bad "ts"`},
		{`{"kind":"lost","ts":"2026-01-01T00:00:00Z"}`, `lost record without "count"`},
		{`{"kind":"state","ts":"2026-01-01T00:00:00Z","sock":"zz"}`, `bad "sock"`},
		{`{"kind":"state","ts":"2026-01-01T00:00:00Z","sock":"1","family":"ipv4","saddr":"::1","sport":1,"daddr":"1.2.3.4","dport":2,"old":"CLOSE","new":"LISTEN","pid":1,"comm":"x","netns":1}`, `does not belong to family ipv4`},
		{`{"kind":"state","ts":"2026-01-01T00:00:00Z","sock":"1","family":"ipv4","saddr":"1.2.3.4","sport":1,"daddr":"1.2.3.4","dport":2,"old":"CLOSE","new":"NOPE","pid":1,"comm":"x","netns":1}`, `unknown TCP state "NOPE"`},
		{`{"kind":"state","ts":"2026-01-01T00:00:00Z","sock":"1","family":"ipv4","saddr":"1.2.3.4","sport":70000}`, "not a JSON object"},
		{`{"kind":"bind","ts":"2026-01-01T00:00:00Z","pid":1,"comm":"x","fd":3,"family":"ipv4","addr":"0.0.0.0","port":80,"ret":-98,"errno":"EADDRNOTAVAIL","reuseaddr":false,"reuseport":false,"netns":1}`, `disagrees with "ret"`},
		{`{"kind":"timewait","ts":"2026-01-01T00:00:00Z","event":"enter","family":"ipv4","saddr":"1.2.3.4","sport":1,"daddr":"1.2.3.4","dport":2,"remaining_ms":-5,"netns":1,"source":"inferred"}`, `bad "remaining_ms"`},
	} {
		var ev event.Event
		err := Decode([]byte(tc.line), &ev)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Decode(%s) = %v, want an error containing %q", tc.line, err, tc.want)
		}
	}
	var ev event.Event
	if err := Decode([]byte(`{"kind":"header","ts":"2026-01-01T00:00:00Z","version":1}`), &ev); err != ErrHeader {
		t.Errorf("header: %v, want ErrHeader", err)
	}
}

// Fields may be added to the schema: unknown ones are ignored.
func TestDecodeIgnoresNewFields(t *testing.T) {
	var ev event.Event
	line := `{"kind":"lost","ts":"2026-01-01T00:00:00Z","count":3,"future":{"x":[1,2]}}`
	if err := Decode([]byte(line), &ev); err != nil || ev.Lost != 3 {
		t.Errorf("Decode = %v, %+v", err, ev)
	}
}

func TestAppendDoesNotAllocate(t *testing.T) {
	evs := sample.Events()
	buf := make([]byte, 0, 64<<10)
	n := testing.AllocsPerRun(100, func() {
		b := buf[:0]
		for i := range evs {
			b = Append(b, &evs[i])
		}
	})
	if n != 0 {
		t.Errorf("Append allocates %v times per batch", n)
	}
}

// An Encoder's cache of the last second never changes the output.
func TestEncoderMatchesAppend(t *testing.T) {
	var enc Encoder
	for _, ev := range sample.Events() {
		if got, want := string(enc.Append(nil, &ev)), string(Append(nil, &ev)); got != want {
			t.Fatalf("Encoder.Append = %s, Append = %s", got, want)
		}
	}
}

// FuzzDecode: capture files are untrusted input. Decode must never panic,
// and whatever it accepts must encode and decode back to the same event.
func FuzzDecode(f *testing.F) {
	for _, line := range bytes.Split(encodeAll(sample.Events()), []byte("\n")) {
		f.Add(line)
	}
	f.Add([]byte(`{"kind":"state","ts":"2026-01-01T00:00:00Z","old_ms":1e308}`))
	// Records of a capture that are not events, and names that are cut in
	// a character or at a NUL.
	f.Add([]byte(`{"kind":"socket","ts":"2026-01-01T00:00:00Z","state":"LISTEN"}`))
	f.Add([]byte(`{"kind":"end","ts":"2026-01-01T00:00:00Z","events":1,"lost":0,"bytes":9,"reason":"signal"}`))
	f.Add([]byte(`{"kind":"header","ts":"2026-01-01T00:00:00Z","version":2}`))
	f.Add([]byte(`{"kind":"bind","ts":"2026-01-01T00:00:00Z","pid":1,"comm":"0123456789abcd\u00e9","fd":3,"family":"ipv4",` +
		`"addr":"0.0.0.0","port":80,"ret":0,"errno":"","reuseaddr":true,"reuseport":false,"netns":1}`))
	f.Add([]byte(`{"kind":"bind","ts":"2026-01-01T00:00:00Z","pid":1,"comm":"a\u0000b","fd":3,"family":"ipv4",` +
		`"addr":"0.0.0.0","port":80,"ret":0,"errno":"","reuseaddr":true,"reuseport":false,"netns":1}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		var ev event.Event
		if err := Decode(line, &ev); err != nil {
			return
		}
		again := Append(nil, &ev)
		var back event.Event
		if err := Decode(again, &back); err != nil {
			t.Fatalf("re-encoded %s does not decode: %v", again, err)
		}
		if back != ev {
			t.Fatalf("not stable:\n%+v\n%+v", ev, back)
		}
	})
}

// BenchmarkAppend: Event to JSON, as the stream encodes (one Encoder).
func BenchmarkAppend(b *testing.B) {
	evs := sample.Events()
	buf := make([]byte, 0, 64<<10)
	var enc Encoder
	b.ReportAllocs()
	for b.Loop() {
		buf = buf[:0]
		for i := range evs {
			buf = enc.Append(buf, &evs[i])
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(evs)), "ns/event")
}
