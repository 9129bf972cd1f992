package report

import (
	"bytes"
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/charmbracelet/x/exp/golden"

	"github.com/twtrace/twtrace/internal/sample"
	"github.com/twtrace/twtrace/tracer/capture"
	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/table"
)

// incident is a capture of the sample stream, after a starting snapshot: the
// listener on 8080 with SO_REUSEADDR, a TIME_WAIT an older instance without
// it left there, and a database client; with the kernel's counters at both
// ends.
func incident(t testing.TB, compress bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	h := capture.Header{
		Time: sample.Start, Started: sample.Start, Host: "web-1", Kernel: "6.8.0-45-generic", NetNS: 4026531840,
		Sysctls: map[string]string{"net.ipv4.tcp_tw_reuse": "2", "net.ipv4.ip_local_port_range": "32768\t60999",
			"net.ipv4.tcp_fin_timeout": "60", "net.ipv4.ip_unprivileged_port_start": "1024"},
		Filters:  map[string][]string{},
		Counters: &capture.Counters{TW: 1200, TimeWait: 1, InUse: 9},
	}
	w, err := capture.NewWriter(&buf, "incident.jsonl", h, capture.Options{Compress: compress})
	if err != nil {
		t.Fatal(err)
	}
	socks := []table.Socket{
		{Cookie: 0x1001, Family: event.FamilyIPv4, State: event.StateTimeWait, NetNS: 4026531840,
			Src: netip.MustParseAddrPort("127.0.0.1:8080"), Dst: netip.MustParseAddrPort("127.0.0.1:49000"),
			Owner: 3990, OwnerComm: event.MakeComm("nginx"),
			Expires: sample.Start.Add(30 * time.Second), Confirmed: true, Source: "sock_diag", Reuse: event.ReuseKnown},
		{Cookie: 0x1003, Family: event.FamilyIPv4, State: event.StateEstablished, NetNS: 4026531840, Inode: 9003,
			Src: netip.MustParseAddrPort("10.0.0.5:41000"), Dst: netip.MustParseAddrPort("10.0.0.9:5432"),
			Owner: 6000, OwnerComm: event.MakeComm("loadgen"), Source: "sock_diag"},
	}
	if err := w.WriteSnapshot(socks, sample.Start); err != nil {
		t.Fatal(err)
	}
	evs := sample.Events()
	for i := range evs {
		if evs[i].Kind == event.KindState && evs[i].Src.Port() == 8080 {
			evs[i].SockReuse = event.ReuseKnown | event.ReuseAddr
		}
	}
	if err := w.Write(evs); err != nil {
		t.Fatal(err)
	}
	if err := w.End(capture.EndSignal, &capture.Counters{TW: 1203, TimeWait: 2, InUse: 9}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func build(t testing.TB, data []byte, opt Options) *Report {
	t.Helper()
	r, err := capture.NewReader(bytes.NewReader(data), "incident.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rep, err := Build(context.Background(), r, opt)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func write(t testing.TB, rep *Report, format string) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := rep.Write(&b, format); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestTextGolden(t *testing.T) {
	golden.RequireEqual(t, write(t, build(t, incident(t, false), Options{}), "text"))
}

func TestMarkdownGolden(t *testing.T) {
	golden.RequireEqual(t, write(t, build(t, incident(t, true), Options{}), "md"))
}
