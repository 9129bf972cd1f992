package session

// A server load of the kind that made the TIME_WAIT count drift above the
// kernel's: the server closes first, and the clients reuse 4-tuples, so that
// nearly every new SYN ends a server-side TIME_WAIT.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/twtrace/twtrace/internal/tracertest"
	"github.com/twtrace/twtrace/tracer"
	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/table"
)

// loadResult says what a serverLoad did.
type loadResult struct {
	conns    int // connections served
	failures int // connect() or bind() refused (a port still busy): skipped
}

// serverLoad runs, in ns, a server on 127.0.0.1:port that closes every
// connection first, and workers clients that bind their source ports from
// a fixed set of ports (SO_REUSEADDR) in turn: each new SYN arrives on a
// 4-tuple the server's side still holds in TIME_WAIT. It stops after conns
// connections or at the deadline, whichever comes first.
func serverLoad(t *testing.T, ns *tracertest.NetNS, port uint16, ports []uint16, workers, conns int, limit time.Duration) loadResult {
	t.Helper()
	l := listenIn(t, ns, port)
	defer l.Close()
	var served sync.WaitGroup
	served.Add(1)
	go func() {
		defer served.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close() // the server closes first: its side ends in TIME_WAIT
		}
	}()

	deadline := time.Now().Add(limit)
	var done, failed atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := ns.Do(func() error {
				buf := make([]byte, 1)
				for k := w; ; k += workers {
					if done.Load() >= int64(conns) || time.Now().After(deadline) {
						return nil
					}
					d := net.Dialer{
						LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(ports[k%len(ports)])},
						Control: func(_, _ string, rc syscall.RawConn) error {
							var serr error
							err := rc.Control(func(fd uintptr) {
								serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
							})
							return errors.Join(err, serr)
						},
					}
					c, err := d.Dial("tcp4", l.Addr().String())
					if err != nil {
						failed.Add(1)
						continue
					}
					if _, err := c.Read(buf); err != io.EOF {
						c.Close()
						return err
					}
					c.Close()
					done.Add(1)
				}
			})
			if err != nil {
				t.Errorf("client: %v", err)
			}
		}()
	}
	wg.Wait()
	l.Close()
	served.Wait()
	return loadResult{conns: int(done.Load()), failures: int(failed.Load())}
}

// kernelTimeWait counts, with ss in ns, the TIME_WAIT sockets on a local port.
func kernelTimeWait(t *testing.T, ns *tracertest.NetNS, port uint16) int {
	t.Helper()
	return len(kernelTimeWaits(t, ns, port))
}

// kernelTimeWaits lists, with ss in ns, the remote ends of the TIME_WAIT
// sockets on a local port.
func kernelTimeWaits(t *testing.T, ns *tracertest.NetNS, port uint16) map[string]bool {
	t.Helper()
	var out []byte
	if err := ns.Do(func() error {
		var err error
		// A child forked from this thread is in its namespace.
		out, err = exec.Command("ss", "-Htan", "state", "time-wait", "sport", "=", ":"+strconv.Itoa(int(port))).Output()
		return err
	}); err != nil {
		t.Fatalf("ss: %v", err)
	}
	m := map[string]bool{}
	for sc := bufio.NewScanner(strings.NewReader(string(out))); sc.Scan(); {
		if f := strings.Fields(sc.Text()); len(f) >= 4 {
			m[f[3]] = true
		}
	}
	return m
}

// timeWaitDiff describes the TIME_WAIT entries of the table the kernel does
// not have, and the kernel's the table does not have (at most a few of each).
func timeWaitDiff(t *testing.T, tab *table.Table, ns *tracertest.NetNS, port uint16) string {
	kernel := kernelTimeWaits(t, ns, port)
	socks, _ := tab.Sockets(table.Query{NetNS: ns.Inode(), States: []event.State{event.StateTimeWait}}, time.Now())
	var b strings.Builder
	seen := map[string]bool{}
	extra := 0
	for _, s := range socks {
		seen[s.Dst.String()] = true
		if !kernel[s.Dst.String()] && extra < 5 {
			extra++
			full, _ := tab.Socket(s.Cookie, time.Now())
			fmt.Fprintf(&b, "\n  table only: %+v", full)
		}
	}
	missing := 0
	for k := range kernel {
		if !seen[k] && missing < 5 {
			missing++
			fmt.Fprintf(&b, "\n  kernel only: %s", k)
		}
	}
	return b.String()
}

// tableCounts are the table's TIME_WAIT numbers. The session follows the
// port in every namespace, and other packages' tests may have a socket on
// it elsewhere: the namespace's entries are compared with the kernel's, and
// the header's count with the entries of all namespaces.
type tableCounts struct {
	timeWait int // Stats().TimeWait (the header's count)
	all      int // entries in TIME_WAIT, every namespace
	entries  int // entries in TIME_WAIT in the namespace
	sockets  int // Stats().Sockets
}

func countTable(tab *table.Table, netns uint32) tableCounts {
	st := tab.Stats()
	tw := []event.State{event.StateTimeWait}
	_, n := tab.Sockets(table.Query{NetNS: netns, States: tw, Limit: 1}, time.Now())
	_, all := tab.Sockets(table.Query{States: tw, Limit: 1}, time.Now())
	return tableCounts{timeWait: st.TimeWait, all: all, entries: n, sockets: st.Sockets}
}

// agrees reports whether the table agrees with the kernel's count.
func (c tableCounts) agrees(kernel int) bool {
	return c.entries == kernel && c.timeWait == c.all && c.timeWait <= c.sockets
}

// Under the load, with and without eviction, every TIME_WAIT count of the
// table converges to the kernel's once the load stops: the header's count,
// the entries in TIME_WAIT, and never more than the sockets.
func TestTimeWaitConvergesUnderServerLoad(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cap   int
		ports int
		conns int
	}{
		// 2 000 TIME_WAIT at the end; the default cap holds everything.
		{"no eviction", 0, 2000, 30000},
		// Closed sockets linger by the thousands past a cap of 3 000:
		// eviction takes TIME_WAIT entries too, reconciliation brings them back.
		{"eviction", 3000, 2000, 30000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := tracertest.NewNetNS(t)
			const port = 7010
			r := start(t, Config{
				Tracer:     tracer.Config{Filter: event.Filter{Ports: []uint16{port}}},
				Table:      table.Config{MaxSockets: tc.cap, Linger: 2 * time.Second},
				Namespaces: []int{ns.FD()},
			})
			ports := make([]uint16, tc.ports)
			for i := range ports {
				ports[i] = uint16(20000 + i)
			}
			began := time.Now()
			res := serverLoad(t, ns, port, ports, 4, tc.conns, 40*time.Second)
			took := time.Since(began)
			if res.conns < tc.conns/2 {
				t.Fatalf("the load made %d connections (%d refused) in %v, want at least %d", res.conns, res.failures, took, tc.conns/2)
			}
			during := countTable(r.s.Table(), ns.Inode())
			st := r.s.Table().Stats()
			t.Logf("%d connections in %v (%d refused); at the end: table %+v, evicted %d, reuses %d, kills %d, lost %d",
				res.conns, took.Round(time.Millisecond), res.failures, during, st.Evicted,
				st.TimeWaitEnded[event.TimeWaitReuse], st.TimeWaitEnded[event.TimeWaitKill], st.Lost)
			if tc.cap > 0 && st.Evicted == 0 {
				t.Errorf("no eviction under a cap of %d", tc.cap)
			}
			// Every connection after the first on each client port ended a
			// TIME_WAIT with its SYN: a reuse, not a kill. (With eviction,
			// the TIME_WAITs evicted meanwhile cannot be matched.)
			reuses, kills := st.TimeWaitEnded[event.TimeWaitReuse], st.TimeWaitEnded[event.TimeWaitKill]
			if want := uint64(res.conns-tc.ports) * 9 / 10; tc.cap == 0 && (reuses < want || kills > reuses/100) {
				t.Errorf("%d reuses and %d kills; want at least %d reuses and at most 1%% kills", reuses, kills, want)
			}

			// Within a few reconciliation rounds after the linger, the table
			// agrees with the kernel.
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			var kernel int
			var got tableCounts
			for {
				kernel = kernelTimeWait(t, ns, port)
				got = countTable(r.s.Table(), ns.Inode())
				if got.agrees(kernel) {
					break
				}
				select {
				case <-ctx.Done():
					t.Fatalf("%v after the load: kernel %d TIME_WAIT, table %+v%s", time.Since(began)-took, kernel, got,
						timeWaitDiff(t, r.s.Table(), ns, port))
				case <-time.After(500 * time.Millisecond):
				}
			}
			t.Logf("converged %v after the load: kernel %d, table %+v", (time.Since(began) - took).Round(time.Millisecond), kernel, got)
			if kernel < tc.ports/2 {
				t.Errorf("kernel holds %d TIME_WAIT, want about one per client port (%d)", kernel, tc.ports)
			}
		})
	}
}
