package stream

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/twtrace/twtrace/tracer/event"

	"github.com/charmbracelet/x/exp/golden"

	"github.com/twtrace/twtrace/tracer/table"
)

// sampleSockets: a listener of each reuse kind, a connection, and a
// TIME_WAIT that predates twtrace and was seen by neither the iterator nor
// its owner.
func sampleSockets(now time.Time) []table.Socket {
	ap := netip.MustParseAddrPort
	return []table.Socket{
		{Cookie: 0x1a, Family: event.FamilyIPv4, Src: ap("0.0.0.0:8080"), Dst: ap("0.0.0.0:0"), State: event.StateListen,
			Owner: 4120, OwnerComm: event.MakeComm("nginx"), Reuse: event.ReuseKnown | event.ReuseAddr},
		{Cookie: 0x1b, Family: event.FamilyIPv6, Src: ap("[::]:9090"), Dst: ap("[::]:0"), State: event.StateListen,
			Owner: 4300, OwnerComm: event.MakeComm("envoy"), Reuse: event.ReuseKnown | event.ReuseAddr | event.ReusePort},
		{Cookie: 0x1c, Family: event.FamilyIPv4, Src: ap("127.0.0.1:7000"), Dst: ap("0.0.0.0:0"), State: event.StateListen,
			Owner: 77, OwnerComm: event.MakeComm("python3"), Reuse: event.ReuseKnown},
		{Cookie: 0x2a, Family: event.FamilyIPv4, Src: ap("10.0.0.1:8080"), Dst: ap("10.0.0.9:51234"), State: event.StateEstablished,
			Owner: 4120, OwnerComm: event.MakeComm("nginx"), Reuse: event.ReuseKnown | event.ReuseAddr},
		{Cookie: 0x2b, Family: event.FamilyIPv4, Src: ap("10.0.0.1:8080"), Dst: ap("10.0.0.9:51200"), State: event.StateTimeWait,
			Expires: now.Add(42500 * time.Millisecond)},
	}
}

func TestSocketsGolden(t *testing.T) {
	now := time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC)
	var out bytes.Buffer
	if err := WriteSockets(&out, sampleSockets(now), now, false); err != nil {
		t.Fatal(err)
	}
	golden.RequireEqual(t, out.String())
}
