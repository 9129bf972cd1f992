package text

import (
	"testing"
	"time"

	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/table"
)

func TestAppendTimer(t *testing.T) {
	for _, c := range []struct {
		timer   table.Timer
		left    time.Duration
		retrans uint8
		want    string
	}{
		{table.TimerNone, 0, 0, "-"},
		{table.TimerTimeWait, 42500 * time.Millisecond, 0, "timewait 42.5s"},
		{table.TimerTimeWait, 0, 0, "timewait 0.0s"},
		{table.TimerKeepalive, 7199 * time.Second, 0, "keepalive 1h59m"},
		{table.TimerKeepalive, 14900 * time.Millisecond, 2, "keepalive 14.9s (2)"},
		{table.TimerRetransmit, 204 * time.Millisecond, 3, "retransmit 204ms (3)"},
		{table.TimerProbe, 1200 * time.Millisecond, 0, "probe 1.2s"},
		{table.Timer(9), time.Second, 0, "timer9 1.0s"},
	} {
		if got := string(AppendTimer(nil, c.timer, c.left, c.retrans)); got != c.want {
			t.Errorf("AppendTimer(%d, %v, %d) = %q, want %q", c.timer, c.left, c.retrans, got, c.want)
		}
	}
}

func TestAppendHolders(t *testing.T) {
	nginx := event.MakeComm("nginx")
	hs := []table.Holder{{PID: 4120, Comm: nginx, FDs: []int{6}}, {PID: 4121, Comm: nginx, FDs: []int{6, 9}}}
	if got, want := string(AppendHolders(nil, hs)), "4120 nginx fd=6, 4121 nginx fd=6,9"; got != want {
		t.Errorf("holders %q, want %q", got, want)
	}
	if got := string(AppendHolders(nil, nil)); got != "-" {
		t.Errorf("no holders: %q, want -", got)
	}
	// Without a listing's holders, the table's owner; a task name cannot
	// reach the terminal raw.
	s := table.Socket{Owner: 7, OwnerComm: event.MakeComm("evil\x1b[2J")}
	if got, want := string(AppendSocketOwners(nil, &s)), "7 evil?[2J"; got != want {
		t.Errorf("owner %q, want %q", got, want)
	}
	s.Detail = &table.Detail{Holders: hs[:1]}
	if got, want := string(AppendSocketOwners(nil, &s)), "4120 nginx fd=6"; got != want {
		t.Errorf("owner with holders %q, want %q", got, want)
	}
}
