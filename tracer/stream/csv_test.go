package stream

import (
	"bytes"
	"encoding/csv"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/exp/golden"

	"github.com/twtrace/twtrace/internal/sample"
	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/text"
)

func renderCSV(t *testing.T, batches ...[]event.Event) string {
	t.Helper()
	var out bytes.Buffer
	w := NewCSV(&out)
	for _, b := range batches {
		if err := w.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	return out.String()
}

func TestCSVGolden(t *testing.T) {
	golden.RequireEqual(t, renderCSV(t, sample.Events()))
}

// TestCSVParsesBack: encoding/csv reads every row back, the hostile task
// name included, and each field says what the event holds.
func TestCSVParsesBack(t *testing.T) {
	evs := sample.Events()
	out := renderCSV(t, evs[:5], nil, evs[5:])
	r := csv.NewReader(strings.NewReader(out))
	recs, err := r.ReadAll() // also checks that every row has the header's field count
	if err != nil {
		t.Fatalf("encoding/csv: %v\n%s", err, out)
	}
	if len(recs) != len(evs)+1 || strings.Join(recs[0], ",") != CSVHeader {
		t.Fatalf("%d records, header %q; want %d and %q", len(recs), recs[0], len(evs)+1, CSVHeader)
	}
	col := map[string]int{}
	for i, name := range recs[0] {
		col[name] = i
	}
	for i := range evs {
		ev, rec := &evs[i], recs[i+1]
		get := func(name string) string { return rec[col[name]] }
		if ts, err := time.Parse(time.RFC3339Nano, get("time")); err != nil || !ts.Equal(ev.Time) {
			t.Errorf("row %d: time %q (%v), want %v", i, get("time"), err, ev.Time)
		}
		if k, ok := event.ParseKind(get("kind")); !ok || k != ev.Kind {
			t.Errorf("row %d: kind %q, want %v", i, get("kind"), ev.Kind)
		}
		if pid, comm, ok := text.Task(ev); ok != (get("pid") != "") ||
			ok && (get("pid") != strconv.Itoa(int(pid)) || get("comm") != text.Comm(comm)) {
			t.Errorf("row %d: task %q %q, want %d %q (%v)", i, get("pid"), get("comm"), pid, text.Comm(&ev.Comm), ok)
		}
		if pid, comm := text.EventOwner(ev); pid == 0 && get("owner_pid")+get("owner_comm") != "" ||
			pid != 0 && (get("owner_pid") != strconv.Itoa(int(pid)) || get("owner_comm") != text.Comm(comm)) {
			t.Errorf("row %d: owner %q %q, want %d", i, get("owner_pid"), get("owner_comm"), pid)
		}
		for name, c := range map[string]text.Column{"local": text.ColLocal, "remote": text.ColRemote, "event": text.ColWhat} {
			if want := string(text.AppendColumn(nil, ev, c, time.UTC)); get(name) != want {
				t.Errorf("row %d: %s %q, want %q as the text stream", i, name, get(name), want)
			}
		}
		d, ok := text.DetailDuration(ev)
		if ms, err := strconv.ParseFloat(get("ms"), 64); ok != (err == nil) ||
			ok && time.Duration(ms*1000)*time.Microsecond != d.Truncate(time.Microsecond) {
			t.Errorf("row %d: ms %q, want %v (%v)", i, get("ms"), d, ok)
		}
		if want := string(text.AppendNote(nil, ev)); get("detail") != want {
			t.Errorf("row %d: detail %q, want %q", i, get("detail"), want)
		}
	}
	if !strings.Contains(out, `"evil""?[2J\"`) {
		t.Errorf("the task name with a quote is not quoted as RFC 4180 says:\n%s", out)
	}
}

func TestCSVQuoting(t *testing.T) {
	for in, want := range map[string]string{
		"plain": "plain", "a,b": `"a,b"`, `say "hi"`: `"say ""hi"""`, " lead": `" lead"`, `\.`: `"\."`, "": "",
	} {
		var c CSV
		b := []byte("x,")
		if got := string(c.quote(append(b, in...), len(b))); got != "x,"+want {
			t.Errorf("quote(%q) = %q, want %q", in, got, "x,"+want)
		}
	}
}

func BenchmarkCSV(b *testing.B) {
	evs := sample.Events()
	w := NewCSV(discard{})
	b.ReportAllocs()
	for b.Loop() {
		_ = w.Write(evs)
	}
}

func TestCSVTime(t *testing.T) {
	for _, ts := range []time.Time{
		sample.Start, sample.Start.Add(10 * time.Millisecond), time.Date(2026, 2, 3, 4, 5, 6, 7, time.FixedZone("X", -7200)),
		{}, time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		want := ts.UTC().AppendFormat(nil, "2006-01-02T15:04:05.000000000Z07:00")
		if got := appendUTC(nil, ts); string(got) != string(want) {
			t.Errorf("appendUTC(%v) = %s, want %s", ts, got, want)
		}
	}
}
