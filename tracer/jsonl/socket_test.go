package jsonl

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twtrace/twtrace/tracer/event"

	"github.com/twtrace/twtrace/internal/sample"
	"github.com/twtrace/twtrace/tracer/table"
)

// AppendSocket writes the reuse options as booleans, or null when the
// iterator could not read them: never a guess.
func TestAppendSocketReuse(t *testing.T) {
	now := time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC)
	for _, c := range []struct {
		reuse      event.Reuse
		addr, port *bool
	}{
		{0, nil, nil},
		{event.ReuseKnown, ptr(false), ptr(false)},
		{event.ReuseKnown | event.ReuseAddr, ptr(true), ptr(false)},
		{event.ReuseKnown | event.ReusePort, ptr(false), ptr(true)},
		{event.ReuseKnown | event.ReuseAddr | event.ReusePort, ptr(true), ptr(true)},
	} {
		s := table.Socket{
			Cookie: 0x1a, Family: event.FamilyIPv4, State: event.StateTimeWait,
			Src: netip.MustParseAddrPort("127.0.0.1:8080"), Dst: netip.MustParseAddrPort("127.0.0.1:40000"),
			Expires: now.Add(time.Second), Source: "sock_diag", Reuse: c.reuse,
		}
		line := AppendSocket(nil, &s, now)
		var got struct {
			ReuseAddr   *bool  `json:"reuseaddr"`
			ReusePort   *bool  `json:"reuseport"`
			RemainingMS int64  `json:"remaining_ms"`
			Source      string `json:"source"`
		}
		if err := json.Unmarshal(line, &got); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if !eqBool(got.ReuseAddr, c.addr) || !eqBool(got.ReusePort, c.port) || got.RemainingMS != 1000 || got.Source != "sock_diag" {
			t.Errorf("%v: %s", c.reuse, line)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func eqBool(a, b *bool) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

// A capture's socket record carries everything `sockets --json` says, and
// reads back to the same socket; the timer counts from the record's ts.
func TestSocketRecordRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC)
	socks := []table.Socket{
		{Cookie: 0x1a, Family: event.FamilyIPv4, State: event.StateTimeWait,
			Src: netip.MustParseAddrPort("127.0.0.1:8080"), Dst: netip.MustParseAddrPort("127.0.0.1:40000"),
			Expires: at.Add(41500 * time.Millisecond), Confirmed: true, Source: "sock_diag",
			Reuse: event.ReuseKnown | event.ReuseAddr, NetNS: 4026531840},
		{Cookie: 0x2b, Family: event.FamilyIPv6, State: event.StateListen,
			Src: netip.MustParseAddrPort("[::]:443"), Dst: netip.MustParseAddrPort("[::]:0"),
			Owner: 812, OwnerComm: event.MakeComm("nginx"), Container: "4f1c2a9b3e7d", Inode: 91234,
			Since: at.Add(-time.Hour), Source: "sock_diag+trace", Reuse: event.ReuseKnown | event.ReusePort, NetNS: 7},
		{Cookie: 0x3c, Family: event.FamilyIPv4, State: event.StateEstablished,
			Src: netip.MustParseAddrPort("10.0.0.5:40001"), Dst: netip.MustParseAddrPort("10.0.0.9:5432"),
			Source: "trace", NetNS: 7},
	}
	for _, s := range socks {
		line := AppendSocketRecord(nil, &s, at)
		var ev event.Event
		if err := Decode(line[:len(line)-1], &ev); err != ErrSocket {
			t.Errorf("Decode of a socket record: %v, want ErrSocket", err)
		}
		var back table.Socket
		got, err := DecodeSocket(line, &back)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if !got.Equal(at) || !reflect.DeepEqual(back, s) {
			t.Errorf("socket record does not round-trip:\n got %+v at %v\nwant %+v\nline %s", back, got, s, line)
		}
		// The same fields as sockets --json, after kind and ts; the listing
		// adds what it reads beyond the table (queues, timer, holders).
		plain := string(AppendSocket(nil, &s, at))
		if want := `{"kind":"socket","ts":"2026-11-25T09:30:00Z",` + plain[1:]; !strings.HasPrefix(want, string(line[:len(line)-2])) {
			t.Errorf("socket record\n%s\nis not the start of the sockets --json object\n%s", line, want)
		}
	}
}

func TestDecodeSocketErrors(t *testing.T) {
	base := `{"kind":"socket","ts":"2026-11-25T09:30:00Z","state":"LISTEN","family":"ipv4","saddr":"0.0.0.0","sport":80,` +
		`"daddr":"0.0.0.0","dport":0,"netns":1,"sock":"1a","source":"sock_diag"`
	for _, c := range []struct{ line, want string }{
		{base + `}`, ""},
		{`{"kind":"socket","ts":"2026-11-25T09:30:00Z"}`, `socket record without "state"`},
		{strings.Replace(base, `"LISTEN"`, `"NOPE"`, 1) + `}`, `bad "state" "NOPE"`},
		{strings.Replace(base, `"ipv4"`, `"ipv6"`, 1) + `}`, `"saddr" 0.0.0.0 does not belong to family ipv6`},
		{strings.Replace(base, `"1a"`, `"zz"`, 1) + `}`, `bad "sock" "zz"`},
		{base + `,"reuseaddr":true}`, `one of "reuseaddr" and "reuseport"`},
		{base + `,"since":"yesterday"}`, `bad "since"`},
		{strings.Replace(base, `"sock_diag"`, `"guess"`, 1) + `}`, `bad "source" "guess"`},
		{strings.Replace(base, `"LISTEN"`, `"TIME_WAIT"`, 1) + `,"remaining_ms":-5}`, `bad "remaining_ms" -5`},
		{`[1]`, "not a JSON object"},
	} {
		var s table.Socket
		_, err := DecodeSocket([]byte(c.line), &s)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.line, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %v, want %q", c.line, err, c.want)
		}
	}
}

// State records carry the socket's options: both, or null for unknown;
// records written before the fields existed read as unknown.
func TestStateReuse(t *testing.T) {
	ev := sample.Events()[1] // the listener's CLOSE -> LISTEN
	for _, r := range []event.Reuse{0, event.ReuseKnown, event.ReuseKnown | event.ReuseAddr,
		event.ReuseKnown | event.ReusePort, event.ReuseKnown | event.ReuseAddr | event.ReusePort} {
		ev.SockReuse = r
		line := Append(nil, &ev)
		var back event.Event
		if err := Decode(line, &back); err != nil || back.SockReuse != r {
			t.Errorf("%v: read back %v, %v from %s", r, back.SockReuse, err, line)
		}
	}
	old := `{"kind":"state","ts":"2026-11-25T09:30:00Z","sock":"2a01","family":"ipv4","saddr":"0.0.0.0","sport":8080,` +
		`"daddr":"0.0.0.0","dport":0,"old":"CLOSE","new":"LISTEN","old_ms":null,"pid":1,"comm":"x",` +
		`"owner_pid":null,"owner_comm":null,"netns":1`
	var back event.Event
	if err := Decode([]byte(old+`}`), &back); err != nil || back.SockReuse.Known() {
		t.Errorf("a version 1 state record: %v, reuse %v", err, back.SockReuse)
	}
	if err := Decode([]byte(old+`,"reuseport":false}`), &back); err == nil || !strings.Contains(err.Error(), `one of "reuseaddr" and "reuseport"`) {
		t.Errorf("a state record with one option: %v", err)
	}
	if err := Decode([]byte(`{"kind":"end","ts":"2026-11-25T09:30:00Z","events":1}`), &back); err != ErrEnd {
		t.Errorf("end record: %v, want ErrEnd", err)
	}
}

// FuzzDecodeSocket: socket records come from untrusted captures. Decoding
// never panics, and a record it accepts encodes and decodes to the same
// socket at the same time.
func FuzzDecodeSocket(f *testing.F) {
	at := time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC)
	for _, s := range []table.Socket{
		{Cookie: 0x1a, Family: event.FamilyIPv4, State: event.StateTimeWait, Src: netip.MustParseAddrPort("127.0.0.1:8080"),
			Dst: netip.MustParseAddrPort("127.0.0.1:40000"), Expires: at.Add(41500 * time.Millisecond), Source: "sock_diag",
			Reuse: event.ReuseKnown | event.ReuseAddr},
		{Cookie: 0x2b, Family: event.FamilyIPv6, State: event.StateListen, Src: netip.MustParseAddrPort("[::]:443"),
			Dst: netip.MustParseAddrPort("[::]:0"), Owner: 812, OwnerComm: event.MakeComm("nginx"), Container: "4f1c2a9b3e7d",
			Inode: 91234, Since: at.Add(-time.Hour), Source: "sock_diag+trace"},
	} {
		f.Add(AppendSocketRecord(nil, &s, at))
	}
	f.Add([]byte(`{"kind":"socket","ts":"2026-11-25T09:30:00Z","state":"TIME_WAIT","family":"ipv4","saddr":"1.2.3.4","sport":1,` +
		`"daddr":"1.2.3.4","dport":2,"netns":1,"sock":"1","owner_comm":"0123456789abcd\u00e9","source":"trace","remaining_ms":1}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		var s table.Socket
		at, err := DecodeSocket(line, &s)
		if err != nil {
			return
		}
		again := AppendSocketRecord(nil, &s, at)
		var back table.Socket
		at2, err := DecodeSocket(again, &back)
		if err != nil {
			t.Fatalf("re-encoded %s does not decode: %v", again, err)
		}
		if !at2.Equal(at) || !reflect.DeepEqual(back, s) {
			t.Fatalf("not stable:\n%+v\n%+v\n%s", s, back, again)
		}
	})
}
