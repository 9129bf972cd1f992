package capture

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/twtrace/twtrace/tracer/event"

	"github.com/twtrace/twtrace/internal/sample"
	"github.com/twtrace/twtrace/tracer/table"
)

// snapshotSockets is a starting snapshot: the sample's listener on 8080,
// a TIME_WAIT left there by an older instance, and a client of a database.
func snapshotSockets() []table.Socket {
	return []table.Socket{
		{Cookie: 0x1001, Family: event.FamilyIPv4, State: event.StateListen, NetNS: 4026531840, Inode: 9001,
			Src: netip.MustParseAddrPort("0.0.0.0:8080"), Dst: netip.MustParseAddrPort("0.0.0.0:0"),
			Owner: 4000, OwnerComm: event.MakeComm("nginx"), Source: "sock_diag", Reuse: event.ReuseKnown},
		{Cookie: 0x1002, Family: event.FamilyIPv4, State: event.StateTimeWait, NetNS: 4026531840,
			Src: netip.MustParseAddrPort("127.0.0.1:8080"), Dst: netip.MustParseAddrPort("127.0.0.1:49000"),
			Expires: sample.Start.Add(30 * time.Second), Confirmed: true, Source: "sock_diag", Reuse: event.ReuseKnown},
		{Cookie: 0x1003, Family: event.FamilyIPv4, State: event.StateEstablished, NetNS: 4026531840, Inode: 9003,
			Src: netip.MustParseAddrPort("10.0.0.5:41000"), Dst: netip.MustParseAddrPort("10.0.0.9:5432"),
			Owner: 6000, OwnerComm: event.MakeComm("loadgen"), Source: "sock_diag"},
	}
}

// withSnapshot is a capture of the sample stream after the snapshot.
func withSnapshot(t testing.TB, opt Options) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, "mem", testHeader(), opt)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteSnapshot(snapshotSockets(), sample.Start); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(sample.Events()); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteSnapshot(nil, sample.Start); err == nil {
		t.Error("a snapshot after the events was accepted")
	}
	if err := w.End(EndDuration, nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// The snapshot reads back whole, before the events; socket records are not
// events and are not counted as such; the end record gives the totals.
func TestSnapshotAndEnd(t *testing.T) {
	for _, compress := range []bool{false, true} {
		data := withSnapshot(t, Options{Compress: compress})
		r, err := NewReader(bytes.NewReader(data), "mem")
		if err != nil {
			t.Fatal(err)
		}
		socks, at := r.Snapshot()
		if !at.Equal(sample.Start) || !reflect.DeepEqual(socks, snapshotSockets()) {
			t.Errorf("snapshot at %v:\n got %+v\nwant %+v", at, socks, snapshotSockets())
		}
		evs, err := readAll(t, r)
		if err != nil || !sameEvents(evs, sample.Events()) {
			t.Fatalf("compress=%v: %d events, %v", compress, len(evs), err)
		}
		end, ok := r.End()
		if !ok || end.Events != int64(len(evs)) || end.Lost != 17 || end.Reason != EndDuration || end.Bytes == 0 {
			t.Errorf("end record %+v", end)
		}
		if r.Line() != 1+len(socks)+len(evs)+1 {
			t.Errorf("Line() = %d", r.Line())
		}
	}
}

// A version 1 capture (no snapshot, no end record) reads to its end as it
// always did: its end is wherever the file ends.
func TestVersion1(t *testing.T) {
	data := encode(t, Options{}, 20)
	lines := bytes.SplitAfter(data, []byte("\n"))
	head := bytes.Replace(lines[0], []byte(`"version":2`), []byte(`"version":1`), 1)
	old := append(head, bytes.Join(lines[1:len(lines)-2], nil)...) // without the end record
	r, err := NewReader(bytes.NewReader(old), "old")
	if err != nil {
		t.Fatal(err)
	}
	evs, err := readAll(t, r)
	if err != nil || len(evs) != 20 || r.Header().Version != 1 {
		t.Fatalf("version 1: %d events, %v", len(evs), err)
	}
	if socks, _ := r.Snapshot(); len(socks) != 0 {
		t.Errorf("a version 1 capture with a snapshot: %v", socks)
	}
	// Cut in a line, it is cut all the same.
	if _, err := read(t, old[:len(old)-5]); !errors.As(err, new(*CutError)) {
		t.Errorf("a cut version 1 capture: %v", err)
	}
}

// Records out of place are damage: line numbers say where.
func TestRecordsOutOfPlace(t *testing.T) {
	data := withSnapshot(t, Options{})
	lines := bytes.SplitAfter(data, []byte("\n"))
	join := func(ls ...[]byte) []byte { return bytes.Join(ls, nil) }
	n := len(lines) - 1 // the last element is empty
	end := lines[n-1]
	for _, c := range []struct {
		name string
		data []byte
		line int
		want string
	}{
		{"socket among events", join(lines[0], lines[4], lines[1], lines[5]), 3, "a socket record among the events"},
		{"data after the end", join(join(lines[:n]...), lines[4]), n + 1, "data after the end record"},
		{"wrong count", join(join(lines[:n-2]...), end), n - 1, "the end record counts 28 events, the file holds 27"},
		{"bad end", join(join(lines[:n-1]...), []byte(`{"kind":"end","ts":"2026-11-25T09:30:00Z"}`+"\n")), n, `end record without a count of "events"`},
		{"bad socket", join(lines[0], []byte(`{"kind":"socket","ts":"2026-11-25T09:30:00Z","state":"LISTEN"}`+"\n")), 2, `socket record without "family"`},
		{"two moments", join(lines[0], lines[1], bytes.Replace(lines[2], []byte(`"ts":"2026-11-25T09:30:00Z"`), []byte(`"ts":"2026-11-25T09:31:00Z"`), 1)),
			3, "a socket record of 2026-11-25T09:31:00Z in a snapshot taken at 2026-11-25T09:30:00Z"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := NewReader(bytes.NewReader(c.data), "cap.jsonl")
			if err == nil {
				_, err = readAll(t, r)
			}
			wantFormatError(t, err, c.line, c.want)
		})
	}
}

// Rebuild restores the snapshot, then applies the events: a diagnosis at
// the moment of the sample's refused bind() sees the old TIME_WAIT and the
// listener the snapshot had, with their owners and options.
func TestRebuild(t *testing.T) {
	r, err := NewReader(bytes.NewReader(withSnapshot(t, Options{Compress: true})), "mem")
	if err != nil {
		t.Fatal(err)
	}
	tab := table.New(table.Config{})
	var atBind []table.Socket
	applied := 0
	err = r.Rebuild(context.Background(), tab, &event.Filter{Ports: []uint16{8080}}, nil, func(ev *event.Event) error {
		applied++
		if ev.Kind == event.KindBind && ev.Ret < 0 {
			atBind, _ = tab.Sockets(table.Query{Ports: []uint16{8080}}, ev.Time)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var tw, listen int
	for _, s := range atBind {
		switch {
		case s.Cookie == 0x1002 && s.State == event.StateTimeWait && s.Reuse == event.ReuseKnown:
			tw++
		case s.Cookie == 0x1001 && s.State == event.StateListen && s.Owner == 4000:
			listen++
		}
	}
	if tw != 1 || listen != 1 {
		t.Errorf("at the refused bind the table has %+v", atBind)
	}
	// The --port filter: the database client is not restored, and the
	// events of other ports are not applied.
	if _, ok := tab.Socket(0x1003, sample.Start); ok {
		t.Error("a socket of another port was restored")
	}
	if applied == len(sample.Events()) {
		t.Error("events of other ports were applied")
	}
	if err := r.Next(new(event.Event)); err != io.EOF {
		t.Errorf("after Rebuild: %v", err)
	}
}

// WriteSnapshot writes socket records in bounded chunks: many sockets.
func TestLargeSnapshot(t *testing.T) {
	var socks []table.Socket
	for i := range 5000 {
		s := snapshotSockets()[1]
		s.Cookie = uint64(0x10000 + i)
		s.Dst = netip.AddrPortFrom(s.Dst.Addr(), uint16(20000+i))
		socks = append(socks, s)
	}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, "mem", testHeader(), Options{Compress: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteSnapshot(socks, sample.Start); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(&buf, "mem")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := r.Snapshot(); !reflect.DeepEqual(got, socks) {
		t.Errorf("read back %d sockets of %d", len(got), len(socks))
	}
	if _, err := readAll(t, r); err != nil || w.Events() != 0 {
		t.Errorf("%v, %d events", err, w.Events())
	}
}
