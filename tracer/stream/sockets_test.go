package stream

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/charmbracelet/x/exp/golden"

	"github.com/twtrace/twtrace/tracer"
	"github.com/twtrace/twtrace/tracer/table"
)

// sampleSockets: a listener of each reuse kind, a connection, and a
// TIME_WAIT that predates twtrace and was seen by neither the iterator nor
// its owner.
func sampleSockets(now time.Time) []table.Socket {
	ap := netip.MustParseAddrPort
	return []table.Socket{
		{Cookie: 0x1a, Family: tracer.FamilyIPv4, Src: ap("0.0.0.0:8080"), Dst: ap("0.0.0.0:0"), State: tracer.StateListen,
			Owner: 4120, OwnerComm: tracer.MakeComm("nginx"), Reuse: tracer.ReuseKnown | tracer.ReuseAddr},
		{Cookie: 0x1b, Family: tracer.FamilyIPv6, Src: ap("[::]:9090"), Dst: ap("[::]:0"), State: tracer.StateListen,
			Owner: 4300, OwnerComm: tracer.MakeComm("envoy"), Reuse: tracer.ReuseKnown | tracer.ReuseAddr | tracer.ReusePort},
		{Cookie: 0x1c, Family: tracer.FamilyIPv4, Src: ap("127.0.0.1:7000"), Dst: ap("0.0.0.0:0"), State: tracer.StateListen,
			Owner: 77, OwnerComm: tracer.MakeComm("python3"), Reuse: tracer.ReuseKnown},
		{Cookie: 0x2a, Family: tracer.FamilyIPv4, Src: ap("10.0.0.1:8080"), Dst: ap("10.0.0.9:51234"), State: tracer.StateEstablished,
			Owner: 4120, OwnerComm: tracer.MakeComm("nginx"), Reuse: tracer.ReuseKnown | tracer.ReuseAddr},
		{Cookie: 0x2b, Family: tracer.FamilyIPv4, Src: ap("10.0.0.1:8080"), Dst: ap("10.0.0.9:51200"), State: tracer.StateTimeWait,
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
