package sockdiag

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/twtrace/twtrace/internal/tracertest"
	"golang.org/x/sys/unix"
)

// Client addresses for makeTimeWaits: 127.0.X.2 with ports from firstPort,
// portsPerAddr of them per address.
const (
	firstPort    = 10000
	portsPerAddr = 50000
	maxTimeWaits = 200 * portsPerAddr
)

// makeTimeWaits leaves n TIME_WAIT sockets in ns, giving up after limit. The
// server side closes first and keeps the TIME_WAIT. Every client binds its own
// address and port, never used twice: a new connection on the 4-tuple of a
// TIME_WAIT socket would end it (a SYN to a TIME_WAIT socket may reopen the
// connection), and ports the kernel picked would eventually come round again.
func makeTimeWaits(ns *tracertest.NetNS, n int, limit time.Duration) (netip.AddrPort, error) {
	if n > maxTimeWaits {
		return netip.AddrPort{}, fmt.Errorf("%d TIME_WAIT sockets asked, at most %d", n, maxTimeWaits)
	}
	// The default limit in a new namespace depends on the host's
	// hash table; past it the kernel drops TIME_WAIT sockets.
	if err := ns.Sysctl("net/ipv4/tcp_max_tw_buckets", fmt.Sprint(2*n+1024)); err != nil {
		return netip.AddrPort{}, err
	}
	var srv netip.AddrPort
	err := ns.Do(func() error {
		lfd, addr, err := listenTCP(netip.MustParseAddrPort("127.0.0.1:0"), 64)
		if err != nil {
			return err
		}
		defer unix.Close(lfd) // TIME_WAIT sockets outlive their listener
		srv = addr
		start := time.Now()
		for i := range n {
			if i%1024 == 0 && time.Since(start) > limit {
				return fmt.Errorf("made %d of %d TIME_WAIT sockets in %v", i, n, limit)
			}
			local := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, byte(1 + i/portsPerAddr), 2}),
				uint16(firstPort+i%portsPerAddr))
			p, err := dialPair(lfd, srv, local)
			if err != nil {
				return fmt.Errorf("connection %d: %w", i, err)
			}
			if err := activeClose(p.server, p.client); err != nil {
				return fmt.Errorf("connection %d: %w", i, err)
			}
		}
		return nil
	})
	return srv, err
}

// BenchmarkDumpTimeWait measures the once-a-second reconciliation: a dump of
// the TIME_WAIT sockets of a namespace that holds n of them. Run the small
// one alone with -bench 'DumpTimeWait/n=1000/'.
func BenchmarkDumpTimeWait(b *testing.B) {
	for _, n := range []int{1000, 100_000} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			ns := tracertest.NewNetNS(b)
			start := time.Now()
			if _, err := makeTimeWaits(ns, n, 60*time.Second); err != nil {
				b.Fatal(err)
			}
			b.Logf("made %d TIME_WAIT sockets in %v", n, time.Since(start).Round(time.Millisecond))
			c, err := Dial(ns.FD())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			settle(b, c, unix.AF_INET, StateMask(StateTimeWait), func(m map[uint64]Socket) bool { return len(m) == n })
			// IPv4 alone; both families as two dumps; both as one.
			for _, v := range []struct {
				name     string
				families []uint8
			}{
				{"inet", []uint8{unix.AF_INET}},
				{"inet+inet6", []uint8{unix.AF_INET, unix.AF_INET6}},
				{"unspec", []uint8{unix.AF_UNSPEC}},
			} {
				b.Run(v.name, func(b *testing.B) { benchDump(b, c, v.families, n, start) })
			}
		})
	}
}

func benchDump(b *testing.B, c *Conn, families []uint8, n int, made time.Time) {
	count := 0
	fn := func(*Socket) error { count++; return nil }
	b.ReportAllocs()
	for b.Loop() {
		count = 0
		for _, f := range families {
			if err := c.Dump(f, StateMask(StateTimeWait), fn); err != nil {
				b.Fatal(err)
			}
		}
	}
	if count != n {
		b.Fatalf("dumped %d TIME_WAIT sockets, want %d (made %v ago: expired?)", count, n, time.Since(made).Round(time.Second))
	}
	b.ReportMetric(float64(count), "sockets/op")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(count), "ns/socket")
}
