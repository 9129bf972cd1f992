package stream

import (
	"bytes"
	"net/netip"
	"strings"
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

// listedSockets are what a listing (twtrace sockets) finds beyond the
// table: a listener shared by nginx's master and worker, with connections
// waiting in its accept queue; a connection with unread data and a
// keepalive timer; one retransmitting; a v4-mapped IPv6 connection, wider
// than the address columns' default, and so are its inode and cookie; an
// orphan in FIN_WAIT2.
func listedSockets(now time.Time) []table.Socket {
	ap := netip.MustParseAddrPort
	nginx := event.MakeComm("nginx")
	shared := []table.Holder{{PID: 4120, Comm: nginx, FDs: []int{6}}, {PID: 4121, Comm: nginx, FDs: []int{6, 9}}}
	return []table.Socket{
		{Cookie: 0x1a, Family: event.FamilyIPv4, Src: ap("0.0.0.0:8080"), Dst: ap("0.0.0.0:0"), State: event.StateListen,
			Inode: 81234, Owner: 4120, OwnerComm: nginx, Reuse: event.ReuseKnown | event.ReuseAddr,
			Detail: &table.Detail{RecvQ: 3, SendQ: 511, Holders: shared}},
		{Cookie: 0x2a, Family: event.FamilyIPv4, Src: ap("10.0.0.1:8080"), Dst: ap("10.0.0.9:51234"), State: event.StateEstablished,
			Inode: 81240, Owner: 4121, OwnerComm: nginx, Reuse: event.ReuseKnown | event.ReuseAddr,
			Detail: &table.Detail{RecvQ: 1448, Timer: table.TimerKeepalive, TimerLeft: 7199 * time.Second,
				Holders: []table.Holder{{PID: 4121, Comm: nginx, FDs: []int{12}}}}},
		{Cookie: 0x2c, Family: event.FamilyIPv4, Src: ap("10.0.0.1:8080"), Dst: ap("10.0.0.7:40000"), State: event.StateEstablished,
			Inode: 81241, Owner: 4121, OwnerComm: nginx, Reuse: event.ReuseKnown | event.ReuseAddr,
			Detail: &table.Detail{SendQ: 3791494, Timer: table.TimerRetransmit, TimerLeft: 204 * time.Millisecond, Retrans: 3,
				Holders: []table.Holder{{PID: 4121, Comm: nginx, FDs: []int{13}}}}},
		{Cookie: 0x80000000004de5a5, Family: event.FamilyIPv6, Src: ap("[::ffff:127.0.0.1]:9090"), Dst: ap("[::ffff:127.0.0.1]:33984"),
			State: event.StateEstablished, Inode: 4106268031, Owner: 77, OwnerComm: event.MakeComm("python3"), Reuse: event.ReuseKnown,
			Detail: &table.Detail{Holders: []table.Holder{{PID: 77, Comm: event.MakeComm("python3"), FDs: []int{4}}}}},
		{Cookie: 0x3b, Family: event.FamilyIPv6, Src: ap("[::ffff:127.0.0.1]:9090"), Dst: ap("[::ffff:127.0.0.1]:33990"),
			State: event.StateTimeWait, FinWait2: true, Expires: now.Add(59 * time.Second), Reuse: event.ReuseKnown},
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

// A listing's columns: the queues, every timer, every holder and fd, the
// inode, an orphan's FIN_WAIT2; and addresses of any width stay in their
// columns.
func TestListedSocketsGolden(t *testing.T) {
	now := time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC)
	var out bytes.Buffer
	if err := WriteSockets(&out, listedSockets(now), now, false); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	// Every column starts where its title does.
	titles := strings.Fields(lines[0])
	for _, l := range lines[1 : len(lines)-1] {
		at := 0
		for k, title := range titles[1 : len(titles)-1] {
			col := strings.Index(lines[0], " "+title+" ") + 1
			if col < at || l[col-1] != ' ' || l[col] == ' ' {
				t.Errorf("column %s (%d) is not where its title is in %q", title, k, l)
				break
			}
			at = col
		}
	}
	for _, want := range []string{
		"LISTEN       3      511     0.0.0.0:8080", "81234", "4120 nginx fd=6, 4121 nginx fd=6,9",
		"keepalive 1h59m", "retransmit 204ms (3)", "3791494",
		"FIN_WAIT2    0      0       [::ffff:127.0.0.1]:9090 [::ffff:127.0.0.1]:33990 timewait 59.0s",
		"5 sockets: 3 ESTABLISHED, 1 FIN_WAIT2, 1 LISTEN",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in:\n%s", want, out.String())
		}
	}
	golden.RequireEqual(t, out.String())
}

// --count sums the sockets up by local port and state: a server's port
// per row, busiest first, the sockets connect() made in one row (marked
// when some are guesses), and the totals.
func TestCountsGolden(t *testing.T) {
	now := time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC)
	socks := append(sampleSockets(now), listedSockets(now)...)
	ap := netip.MustParseAddrPort
	socks = append(socks,
		table.Socket{Family: event.FamilyIPv4, Src: ap("10.0.0.1:40001"), Dst: ap("10.0.0.8:5432"), State: event.StateEstablished, Side: table.SideClient},
		table.Socket{Family: event.FamilyIPv4, Src: ap("10.0.0.1:40002"), Dst: ap("10.0.0.8:5432"), State: event.StateTimeWait, Side: table.SideClientGuess})
	var out bytes.Buffer
	if err := WriteCounts(&out, socks); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"PORT    LISTEN ESTABLISHED FIN_WAIT2 TIME_WAIT TOTAL",
		"8080    2      3           0         1         6",
		"ephem?  0      1           0         1         2",
		"9090    1      1           1         0         3",
		"total   4      5           1         2         12",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in:\n%s", want, out.String())
		}
	}
	golden.RequireEqual(t, out.String())
}
