package capture

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twtrace/twtrace/tracer/event"

	"github.com/klauspost/compress/zstd"

	"github.com/twtrace/twtrace/internal/sample"
)

// testHeader is a fixed header.
func testHeader() Header {
	return Header{
		Time:    sample.Start,
		Version: Version,
		Host:    "web-1",
		Kernel:  "6.8.0-45-generic",
		Started: sample.Start.Add(-time.Second),
		Sysctls: map[string]string{"net.ipv4.tcp_tw_reuse": "2", "net.ipv4.ip_local_port_range": "32768\t60999"},
		Filters: map[string][]string{"port": {"8080"}},
	}
}

// comparable drops what the schema does not carry: thread and cgroup ids.
func comparable(evs []event.Event) []event.Event {
	out := make([]event.Event, len(evs))
	for i, ev := range evs {
		ev.TID, ev.CgroupID = 0, 0
		out[i] = ev
	}
	return out
}

// sameEvents reports whether got is want as a capture carries it.
func sameEvents(got, want []event.Event) bool {
	return len(got) == len(want) && (len(got) == 0 || reflect.DeepEqual(got, comparable(want)))
}

// stream is n events of sample.Events() shape, spread over sockets, ports,
// processes and time as a busy server's would be: ~400 000 events per
// second, with the jitter of real timestamps, ports and durations.
func stream(n int) []event.Event {
	rng := rand.New(rand.NewPCG(1, 2))
	base := sample.Events()
	out := make([]event.Event, 0, n)
	at := sample.Start
	for i := 0; len(out) < n; i++ {
		cookie := uint64(0x10000) + uint64(i)*3 + rng.Uint64N(3)
		port := uint16(32768 + rng.IntN(28232))
		pid := uint32(4000 + rng.IntN(50))
		for _, ev := range base {
			if len(out) == n {
				break
			}
			at = at.Add(time.Duration(rng.IntN(5000)) * time.Nanosecond)
			ev.Time = at
			if ev.Cookie != 0 {
				ev.Cookie = cookie + ev.Cookie&0xff
			}
			if p := ev.Dst.Port(); p > 1024 && p != 8080 {
				ev.Dst = netip.AddrPortFrom(ev.Dst.Addr(), port)
			}
			if p := ev.Src.Port(); p > 1024 && p != 8080 {
				ev.Src = netip.AddrPortFrom(ev.Src.Addr(), port)
			}
			if ev.PID > 4000 {
				ev.PID = pid
			}
			if ev.Owner > 4000 {
				ev.Owner = pid
			}
			if ev.OldKnown {
				// Multiples of 1/8 ms: jsonl decodes old_ms by truncating a float,
				// which turns e.g. 2.074 ms into 2.073999 ms.
				ev.OldDur = time.Duration(rng.Int64N(400)) * 125 * time.Microsecond
			}
			out = append(out, ev)
		}
	}
	return out
}

// readAll reads every event of a capture and the error that ended it (nil at EOF).
func readAll(t testing.TB, r *Reader) ([]event.Event, error) {
	t.Helper()
	var evs []event.Event
	for range 10_000_000 {
		var ev event.Event
		err := r.Next(&ev)
		if err == io.EOF {
			return evs, nil
		}
		if err != nil {
			return evs, err
		}
		evs = append(evs, ev)
	}
	t.Fatal("capture does not end")
	return nil, nil
}

func TestRoundTrip(t *testing.T) {
	for _, name := range []string{"cap.jsonl", "cap.jsonl.zst"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), name)
			w, err := Create(path, testHeader(), Options{})
			if err != nil {
				t.Fatal(err)
			}
			evs := sample.Events()
			// Batches of every size, empty ones included, as a live session hands them over.
			for i, n := 0, 0; i < len(evs); i, n = i+n, n+1 {
				if err := w.Write(evs[i:min(i+n, len(evs))]); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if w.Events() != int64(len(evs)) {
				t.Errorf("Events() = %d, want %d", w.Events(), len(evs))
			}
			if fi, err := os.Stat(path); err != nil || fi.Size() != w.Bytes() {
				t.Errorf("file size %v (%v), Bytes() %d", fi.Size(), err, w.Bytes())
			}

			r, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if got, want := r.Header(), testHeader(); !reflect.DeepEqual(got, want) {
				t.Errorf("header:\n got %+v\nwant %+v", got, want)
			}
			got, err := readAll(t, r)
			if err != nil {
				t.Fatal(err)
			}
			if !sameEvents(got, evs) {
				t.Errorf("events do not round-trip:\n got %+v\nwant %+v", got, comparable(evs))
			}
			if r.Line() != len(evs)+2 {
				t.Errorf("Line() = %d, want %d: the header, the events, the end", r.Line(), len(evs)+2)
			}
			end, ok := r.End()
			if !ok || end.Events != int64(len(evs)) || end.Reason != EndClosed || end.Bytes != w.Bytes()-endLen(t, path) {
				t.Errorf("end record %+v (%v), want %d events", end, ok, len(evs))
			}
		})
	}
}

// The header and end lines as docs/jsonl.md specifies them.
func TestHeaderLine(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, "mem", testHeader(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.End(EndSignal, &Counters{TW: 7, TimeWait: 3}); err != nil {
		t.Fatal(err)
	}
	want := `{"kind":"header","ts":"2026-11-25T09:30:00Z","version":2,"host":"web-1","kernel":"6.8.0-45-generic",` +
		`"started":"2026-11-25T09:29:59Z","sysctls":{"net.ipv4.ip_local_port_range":"32768\t60999",` +
		`"net.ipv4.tcp_tw_reuse":"2"},"filters":{"port":["8080"]}}` + "\n"
	header, end, _ := strings.Cut(buf.String(), "\n")
	if header+"\n" != want {
		t.Errorf("header line:\n got %s\nwant %s", header, want)
	}
	wantEnd := regexp.MustCompile(`^\{"kind":"end","ts":"[0-9T:.-]+Z","events":0,"lost":0,"bytes":` + strconv.Itoa(len(want)) +
		`,"reason":"signal","counters":\{"tw":7,"tw_killed":0,"tw_recycled":0,"tcp_timewait_overflow":0,` +
		`"sockstat_tw":3,"sockstat_orphan":0,"sockstat_inuse":0\}\}\n$`)
	if !wantEnd.MatchString(end) {
		t.Errorf("end line: %s", end)
	}
}

// What the session could not trace is in the header and read back; a
// header without it (every capture before it existed) reads as nothing degraded.
func TestHeaderDegraded(t *testing.T) {
	h := testHeader()
	h.Degraded = []string{"continuing without bind/connect/listen events: because"}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, "mem", h, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `,"degraded":["continuing without bind/connect/listen events: because"]}`) {
		t.Errorf("header line without its degraded list: %s", buf.String())
	}
	r, err := NewReader(&buf, "mem")
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Header().Degraded; len(got) != 1 || got[0] != h.Degraded[0] {
		t.Errorf("degraded read back as %q", got)
	}
	old, err := NewReader(strings.NewReader(`{"kind":"header","ts":"2026-11-25T09:30:00Z","version":1,"started":"2026-11-25T09:29:59Z"}`+"\n"), "old")
	if err != nil {
		t.Fatal(err)
	}
	if got := old.Header().Degraded; got != nil {
		t.Errorf("a header without the field reads as degraded %q", got)
	}
}

func TestHostHeader(t *testing.T) {
	h, err := HostHeader("", map[string][]string{"state": {"TIME_WAIT"}})
	if err != nil {
		t.Logf("partial header: %v", err)
	}
	host, _ := os.Hostname()
	if h.Version != Version || h.Host != host || h.Kernel == "" || h.Started.IsZero() {
		t.Errorf("header %+v", h)
	}
	if _, err := os.Stat("/proc/sys/net/ipv4/tcp_tw_reuse"); err == nil && h.Sysctls["net.ipv4.tcp_tw_reuse"] == "" {
		t.Errorf("no tcp_tw_reuse among sysctls %v", h.Sysctls)
	}
	var buf bytes.Buffer
	if _, err := NewWriter(&buf, "mem", h, Options{}); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"kind", "ts", "version", "host", "kernel", "started", "sysctls", "filters"} {
		if _, ok := m[k]; !ok {
			t.Errorf("header without %q: %s", k, buf.String())
		}
	}
}

func TestCreateRefusesExistingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cap.jsonl")
	if err := os.WriteFile(path, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(path, testHeader(), Options{}); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("Create over an existing file: %v, want fs.ErrExist", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "precious" {
		t.Fatalf("existing file changed: %q", b)
	}
	w, err := Create(path, testHeader(), Options{Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if r, err := Open(path); err != nil {
		t.Fatalf("forced capture: %v", err)
	} else {
		r.Close()
	}
}

// A compressed capture is detected by its bytes, whatever its name.
func TestCompressionDetectedByMagic(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, "mem", testHeader(), Options{Compress: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(sample.Events()); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if !isZstd(buf.Bytes()) {
		t.Fatalf("not zstd: % x", buf.Bytes()[:8])
	}
	path := filepath.Join(t.TempDir(), "named-plain.jsonl")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got, err := readAll(t, r); err != nil || len(got) != len(sample.Events()) {
		t.Fatalf("read %d events, %v", len(got), err)
	}
}

// Frames end on size and on time, so a reader of a file being written
// (or cut by a crash) sees all but the open frame.
func TestFramesEndOnSizeAndTime(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, "mem", testHeader(), Options{Compress: true, FlushBytes: 4 << 10, FlushEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	evs := stream(200)
	for i := range evs {
		if err := w.Write(evs[i : i+1]); err != nil {
			t.Fatal(err)
		}
	}
	if w.Events() < 150 || w.Bytes() != int64(buf.Len()) {
		t.Errorf("after 200 events in 4 KiB frames: %d events, %d bytes saved, %d in the file", w.Events(), w.Bytes(), buf.Len())
	}

	buf.Reset()
	w, err = NewWriter(&buf, "mem", testHeader(), Options{Compress: true, FlushEvery: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(evs[:3]); err != nil {
		t.Fatal(err)
	}
	if w.Events() != 0 {
		t.Fatalf("frame ended early")
	}
	time.Sleep(30 * time.Millisecond)
	if err := w.Write(nil); err != nil { // an idle poll
		t.Fatal(err)
	}
	if w.Events() != 3 {
		t.Fatalf("idle Write did not end the frame after FlushEvery: %d events saved", w.Events())
	}
	// Read while the recorder runs: the 3 events, then a capture not yet
	// closed, which reads as a cut one at the frame's end.
	r, err := NewReader(bytes.NewReader(buf.Bytes()), "mem")
	if err != nil {
		t.Fatal(err)
	}
	var ce *CutError
	if got, err := readAll(t, r); !errors.As(err, &ce) || ce.Where != "" || len(got) != 3 {
		t.Fatalf("read %d events, %v", len(got), err)
	}
}

// Header records in a batch are not written: a capture has one, first.
func TestWriteSkipsHeaderEvents(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, "mem", testHeader(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	evs := sample.Events()[:2]
	if err := w.Write([]event.Event{evs[0], {Kind: event.KindHeader, Time: sample.Start}, evs[1]}); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(buf.String(), "\n"); n != 3 || w.Events() != 2 {
		t.Errorf("%d lines, %d events:\n%s", n, w.Events(), buf.String())
	}
}

// endLen is the length of the end record of the capture at path (the
// last line of its decompressed stream), as a compressed file holds it.
func endLen(t *testing.T, path string) int64 {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !isZstd(data) {
		return int64(len(data) - bytes.LastIndexByte(data[:len(data)-1], '\n') - 1)
	}
	// The end record is the last frame: find where it starts.
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	for off := len(data) - 4; off > 0; off-- {
		if isZstd(data[off:]) {
			if out, err := dec.DecodeAll(data[off:], nil); err == nil && bytes.HasPrefix(out, []byte(`{"kind":"end"`)) {
				return int64(len(data) - off)
			}
		}
	}
	t.Fatal("no end frame")
	return 0
}
