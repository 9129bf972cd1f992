package table

import (
	"reflect"
	"testing"
	"time"

	"github.com/twtrace/twtrace/tracer/event"
)

// A table restored from another's listing is that table: the same sockets
// (owners, containers, options, timers, sources), the same port and process
// summaries, the same client classification; and it goes on the same way.
func TestRestoreIsTheListedTable(t *testing.T) {
	orig := New(Config{Derive: true})
	initial := &Snapshot{NetNS: ns, Start: at(0), End: at(1), Complete: true, Initial: true, Sockets: []KernelSocket{
		{Cookie: 1, Family: event.FamilyIPv4, State: event.StateListen, Src: ap("0.0.0.0:8080"), Dst: ap("0.0.0.0:0"), Inode: 100},
		{Cookie: 2, Family: event.FamilyIPv4, State: event.StateEstablished, Src: ap("127.0.0.1:8080"), Dst: ap("127.0.0.1:50000"), Inode: 101},
		twSock(3, "127.0.0.1:8080", "127.0.0.1:50001", 41*time.Second),
		{Cookie: 4, Family: event.FamilyIPv4, State: event.StateEstablished, Src: ap("127.0.0.1:50002"), Dst: ap("127.0.0.1:5432"), Inode: 102},
	}}
	orig.Load(initial, nil)
	orig.ResolveOwners(func(inode uint32) (uint32, event.Comm, bool) {
		return inode + 1000, event.MakeComm("srv"), true
	})
	orig.SetContainers(map[uint32]string{1100: "4f1c2a9b3e7d"})
	orig.SetReuse([]SocketReuse{{1, event.ReuseKnown | event.ReuseAddr}, {3, event.ReuseKnown}})
	// One socket the stream showed since: it has a known start.
	orig.Apply(&event.Event{Kind: event.KindState, Time: at(5), NetNS: ns, Family: event.FamilyIPv4, Cookie: 5,
		Src: ap("127.0.0.1:8080"), Dst: ap("127.0.0.1:50003"), Old: event.StateSynRecv, New: event.StateEstablished,
		Owner: 1100, OwnerComm: event.MakeComm("srv")}, nil)

	now := at(10)
	listed, _ := orig.Sockets(Query{}, now)
	restored := New(Config{})
	if n := restored.Restore(listed, now); n != len(listed) {
		t.Fatalf("restored %d of %d sockets", n, len(listed))
	}
	if again := restored.Restore(listed, now); again != 0 {
		t.Errorf("restoring again added %d", again)
	}
	got, _ := restored.Sockets(Query{}, now)
	if !reflect.DeepEqual(got, listed) {
		t.Errorf("restored listing:\n got %+v\nwant %+v", got, listed)
	}
	if a, b := restored.Ports(), orig.Ports(); !samePorts(a, b) {
		t.Errorf("port summaries:\n got %+v\nwant %+v", a, b)
	}
	if a, b := restored.Processes(), orig.Processes(); !reflect.DeepEqual(a, b) {
		t.Errorf("process summaries:\n got %+v\nwant %+v", a, b)
	}
	if a, b := restored.Remotes(), orig.Remotes(); !reflect.DeepEqual(a, b) {
		t.Errorf("remote summaries:\n got %+v\nwant %+v", a, b)
	}
	// The restored TIME_WAIT ends when its timer says.
	restored.Tick(at(10+41_000+1), nil)
	if s, _ := restored.Socket(3, at(51_002)); s.State != event.StateClose {
		t.Errorf("the restored TIME_WAIT after its timer: %v", s.State)
	}
	// A restored listener still gives its owner to accepted sockets.
	restored.Apply(&event.Event{Kind: event.KindState, Time: at(20), NetNS: ns, Family: event.FamilyIPv4, Cookie: 9,
		Src: ap("127.0.0.1:8080"), Dst: ap("127.0.0.1:50009"), Old: event.StateListen, New: event.StateSynRecv}, nil)
	if s, _ := restored.Socket(9, at(20)); s.Owner != 1100 {
		t.Errorf("accepted socket's owner %d, want the restored listener's 1100", s.Owner)
	}
}

// samePorts compares port summaries without the per-port activity, which
// a listing does not carry.
func samePorts(a, b []PortSummary) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		x.PortCounters, y.PortCounters = PortCounters{}, PortCounters{}
		if !reflect.DeepEqual(x, y) {
			return false
		}
	}
	return true
}

// Restore never evicts: past the cap, sockets are counted, not taken.
func TestRestoreRespectsTheCap(t *testing.T) {
	tab := New(Config{MaxSockets: 2})
	socks := []Socket{
		{Cookie: 1, Family: event.FamilyIPv4, State: event.StateListen, Src: ap("0.0.0.0:80"), Source: "sock_diag"},
		{Cookie: 2, Family: event.FamilyIPv4, State: event.StateListen, Src: ap("0.0.0.0:81"), Source: "sock_diag"},
		{Cookie: 3, Family: event.FamilyIPv4, State: event.StateListen, Src: ap("0.0.0.0:82"), Source: "sock_diag"},
	}
	if n := tab.Restore(socks, at(0)); n != 2 || tab.Stats().Untracked != 1 || tab.Stats().Evicted != 0 {
		t.Errorf("restored %d, stats %+v", n, tab.Stats())
	}
}
