package text

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/twtrace/twtrace/internal/sample"
	"github.com/twtrace/twtrace/tracer/event"
)

func TestAddr(t *testing.T) {
	for _, c := range []struct {
		ap   netip.AddrPort
		want string
	}{
		{netip.MustParseAddrPort("127.0.0.1:8080"), "127.0.0.1:8080"},
		{netip.MustParseAddrPort("[2001:db8::1]:443"), "[2001:db8::1]:443"},
		{netip.MustParseAddrPort("[::ffff:10.0.0.1]:80"), "[::ffff:10.0.0.1]:80"},
		{netip.MustParseAddrPort("0.0.0.0:0"), "0.0.0.0:*"}, // a listener's peer
		{netip.MustParseAddrPort("[::]:0"), "[::]:*"},
		{netip.AddrPortFrom(netip.Addr{}, 8080), "*:8080"}, // a port without an address
		{netip.AddrPort{}, "-"},
	} {
		if got := Addr(c.ap); got != c.want {
			t.Errorf("Addr(%v) = %q, want %q", c.ap, got, c.want)
		}
	}
}

func TestOwnerAndComm(t *testing.T) {
	evil := event.MakeComm("a\x1b[2Jb\x7f")
	nginx := event.MakeComm("nginx")
	for _, c := range []struct{ got, want string }{
		{Owner(4120, &nginx), "4120 nginx"},
		{Owner(0, &nginx), "-"},
		{Owner(7, &evil), "7 a?[2Jb?"},
		{Comm(&evil), "a?[2Jb?"},
	} {
		if c.got != c.want {
			t.Errorf("%q, want %q", c.got, c.want)
		}
	}
}

func TestClock(t *testing.T) {
	at := time.Date(2026, 11, 25, 9, 30, 1, 234_567_000, time.UTC)
	if got := Clock(at, time.UTC); got != "09:30:01.234" {
		t.Errorf("Clock = %q", got)
	}
	if got := Clock(at, time.FixedZone("X", 3600)); got != "10:30:01.234" {
		t.Errorf("Clock in UTC+1 = %q", got)
	}
	if got := Clock(time.Time{}, time.UTC); got != "-" {
		t.Errorf("Clock of the zero time = %q", got)
	}
}

func TestDurations(t *testing.T) {
	ms := time.Millisecond
	for _, c := range []struct {
		d                   time.Duration
		dur, age, countdown string
	}{
		{-ms, "-", "-", "0.0s"},
		{0, "0.000 ms", "<1ms", "0.0s"},
		{12 * time.Microsecond, "0.012 ms", "<1ms", "0.0s"},
		{25004 * time.Microsecond, "25.0 ms", "25ms", "0.0s"},
		{850 * ms, "850.0 ms", "850ms", "0.8s"},
		{17460 * ms, "17.46 s", "17.5s", "17.5s"},
		{60 * time.Second, "1m00s", "1m00s", "60.0s"},
		{302 * time.Second, "5m02s", "5m02s", "5m02s"},
		{2*time.Hour + 5*time.Minute, "2h05m", "2h05m", "2h05m"},
		{76 * time.Hour, "3d04h", "3d04h", "3d04h"},
	} {
		if got := Duration(c.d); got != c.dur {
			t.Errorf("Duration(%v) = %q, want %q", c.d, got, c.dur)
		}
		if got := Age(c.d); got != c.age {
			t.Errorf("Age(%v) = %q, want %q", c.d, got, c.age)
		}
		if got := Countdown(c.d); got != c.countdown {
			t.Errorf("Countdown(%v) = %q, want %q", c.d, got, c.countdown)
		}
	}
	for d, want := range map[time.Duration]string{
		12 * time.Microsecond: "0.012", 25004 * time.Microsecond: "25.004", 60 * time.Second: "60000", 0: "0",
	} {
		if got := string(AppendMillis(nil, d)); got != want {
			t.Errorf("AppendMillis(%v) = %q, want %q", d, got, want)
		}
	}
}

// row formats every column of an event.
func row(ev *event.Event) [NumColumns]string {
	var r [NumColumns]string
	for c := range NumColumns {
		r[c] = string(AppendColumn(nil, ev, c, time.UTC))
	}
	return r
}

// TestColumns: one event of each kind, every column, and its class.
func TestColumns(t *testing.T) {
	evs := sample.Events()
	byWhat := func(what string) *event.Event {
		t.Helper()
		for i := range evs {
			if string(appendWhat(nil, &evs[i])) == what {
				return &evs[i]
			}
		}
		t.Fatalf("no sample event reads %q", what)
		return nil
	}
	for _, c := range []struct {
		what  string
		want  [NumColumns]string
		class Class
		state event.State
	}{
		{"bind ok", [NumColumns]string{"09:30:00.000", "4120 nginx", "4120 nginx", "0.0.0.0:8080", "", "bind ok", "reuseaddr fd=6"},
			ClassPlain, 0},
		{"SYN_RECV -> ESTABLISHED", [NumColumns]string{"09:30:00.010", "5001 curl", "4120 nginx", "127.0.0.1:8080", "127.0.0.1:51234",
			"SYN_RECV -> ESTABLISHED", "0.012 ms"}, ClassState, event.StateEstablished},
		{"CLOSE -> SYN_SENT", [NumColumns]string{"09:30:00.010", "5001 curl", "5001 curl", "127.0.0.1:*", "127.0.0.1:8080",
			"CLOSE -> SYN_SENT", ""}, ClassState, event.StateSynSent},
		{"TIME_WAIT enter", [NumColumns]string{"09:30:00.036", "-", "4120 nginx", "127.0.0.1:8080", "127.0.0.1:51234",
			"TIME_WAIT enter", "60.0s left (inferred)"}, ClassTimeWait, event.StateTimeWait},
		{"TIME_WAIT expire", [NumColumns]string{"09:31:00.036", "-", "-", "127.0.0.1:8080", "127.0.0.1:51234",
			"TIME_WAIT expire", "(sock_diag)"}, ClassTimeWait, event.StateTimeWait},
		{"!bind EADDRINUSE", [NumColumns]string{"09:30:01.200", "4300 nginx", "4300 nginx", "0.0.0.0:8080", "",
			"!bind EADDRINUSE", "no reuseaddr fd=6"}, ClassFailure, 0},
		{"!listen EADDRINUSE", [NumColumns]string{"09:30:01.300", "4301 backup", "4301 backup", "*:8080", "",
			"!listen EADDRINUSE", "fd=3"}, ClassFailure, 0},
		{"!connect EADDRNOTAVAIL", [NumColumns]string{"09:30:01.500", "6000 loadgen", "6000 loadgen", "", "[2001:db8::1]:443",
			"!connect EADDRNOTAVAIL", "fd=9"}, ClassFailure, 0},
		{"!LOST 17 events", [NumColumns]string{"09:30:01.600", "", "", "", "", "!LOST 17 events", "the kernel could not deliver"},
			ClassLoss, 0},
		{"SYN_SENT -> CLOSE", [NumColumns]string{"09:30:01.700", `7 evil"?[2J\`, "-", "[::1]:8080", "[::1]:40000",
			"SYN_SENT -> CLOSE", "3.00 s reset"}, ClassState, event.StateClose},
	} {
		ev := byWhat(c.what)
		if got := row(ev); got != c.want {
			t.Errorf("%s:\n got %q\nwant %q", c.what, got, c.want)
		}
		if class, state := Classify(ev); class != c.class || state != c.state {
			t.Errorf("%s: class %d state %v, want %d %v", c.what, class, state, c.class, c.state)
		}
		sum := string(AppendSummary(nil, ev))
		if want := strings.TrimSpace(c.want[ColWhat] + " " + c.want[ColDetail]); sum != want {
			t.Errorf("%s: summary %q, want %q", c.what, sum, want)
		}
	}
}

// A softirq transition names the task that was on the CPU, idle or not;
// a listen() read live names the address the kernel put there, which the
// syscall does not report.
func TestTaskAndListenAddress(t *testing.T) {
	ev := event.Event{Kind: event.KindState, Comm: event.MakeComm("swapper/1"), Src: netip.MustParseAddrPort("10.0.0.1:80"),
		Dst: netip.MustParseAddrPort("10.0.0.2:5000"), Old: event.StateFinWait1, New: event.StateFinWait2}
	if got := row(&ev)[ColTask]; got != "0 swapper/1" {
		t.Errorf("idle task: %q", got)
	}
	ev.Comm = event.Comm{}
	if got := row(&ev)[ColTask]; got != "-" {
		t.Errorf("no task: %q", got)
	}
	listen := event.Event{Kind: event.KindListen, PID: 9, Comm: event.MakeComm("srv"), Ret: -98,
		Src: netip.AddrPortFrom(netip.IPv6Unspecified(), 8080)}
	if got := row(&listen)[ColLocal]; got != "*:8080" {
		t.Errorf("listen local: %q, want *:8080", got)
	}
}

// The columns of the sample cost no allocation: trace formats every event.
func TestColumnsDoNotAllocate(t *testing.T) {
	evs := sample.Events()
	buf := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(100, func() {
		b := buf[:0]
		for i := range evs {
			for c := range NumColumns {
				b = AppendColumn(b, &evs[i], c, time.UTC)
			}
			b = AppendNote(b, &evs[i])
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per run of the sample", allocs)
	}
}
