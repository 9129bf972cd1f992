package main

// Captures of real runs: the round trip from a live session to a replayed
// one, a recorder killed under churn, the files a recorder creates as root.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twtrace/twtrace/internal/tracertest"
	"github.com/twtrace/twtrace/tracer"
	"github.com/twtrace/twtrace/tracer/capture"
	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/jsonl"
	"github.com/twtrace/twtrace/tracer/session"
	"github.com/twtrace/twtrace/tracer/table"
)

// listenReuse listens on 127.0.0.1:port with SO_REUSEADDR, as servers do.
func listenReuse(t *testing.T, ctx context.Context, port int) net.Listener {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1) })
		if err != nil {
			return err
		}
		return serr
	}}
	lc.SetMultipathTCP(false)
	l, err := lc.Listen(ctx, "tcp4", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// exchange makes one connection to l whose server side closes first.
func exchange(t *testing.T, l net.Listener) {
	t.Helper()
	c, err := net.Dial("tcp4", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	a, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	c.Read(make([]byte, 1))
}

// tableView is what a capture carries of a socket: not the kernel's later
// corrections that reach the live table without an event (the inode a dump
// finds, a TIME_WAIT confirmed by sock_diag, its timer corrected by a few
// milliseconds: sameTables allows 250 ms).
type tableView struct {
	Cookie   uint64
	State    event.State
	Src, Dst netip.AddrPort
	NetNS    uint32
	Owner    uint32
	Comm     event.Comm
	Reuse    event.Reuse
	Since    time.Time
}

func viewOf(socks []table.Socket) []tableView {
	out := make([]tableView, len(socks))
	for i, s := range socks {
		out[i] = tableView{s.Cookie, s.State, s.Src, s.Dst, s.NetNS, s.Owner, s.OwnerComm, s.Reuse, s.Since}
	}
	return out
}

// sameTables compares two listings as a capture carries them.
func sameTables(a, b []table.Socket) bool {
	if fmt.Sprint(viewOf(a)) != fmt.Sprint(viewOf(b)) {
		return false
	}
	for i := range a {
		if d := a[i].Expires.Sub(b[i].Expires); d < -250*time.Millisecond || d > 250*time.Millisecond {
			return false
		}
	}
	return true
}

// Live events -> record -> replay: the identical event stream, and the
// same table at the end, the sockets that were there before the recording
// began included (a listener and a TIME_WAIT, with owner and options).
func TestCaptureRoundTrip(t *testing.T) {
	tracertest.Require(t)
	tracertest.LockBPF(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	port := freePort(t)
	l := listenReuse(t, ctx, port)
	defer l.Close()
	exchange(t, l) // a TIME_WAIT on the port before the recording

	sess, err := session.Start(session.Config{Tracer: tracer.Config{Filter: event.Filter{Ports: []uint16{uint16(port)}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	path := filepath.Join(t.TempDir(), "cap.jsonl.zst")
	hdr, _ := capture.HostHeader("", nil)
	rec, err := capture.NewRecorder(path, hdr, capture.Options{}, capture.Rotation{}, recordSource(sess))
	if err != nil {
		t.Fatal(err)
	}
	var live []byte
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- sess.Run(runCtx, func(batch []event.Event) error {
			for i := range batch {
				live = jsonl.Append(live, &batch[i])
			}
			return rec.Write(batch)
		})
	}()
	for range 5 {
		exchange(t, l)
	}
	l.Close()
	time.Sleep(1500 * time.Millisecond) // a reconciliation round, and the last events
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := rec.End(capture.EndSignal); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	want, _ := sess.Table().Sockets(table.Query{Ports: []uint16{uint16(port)}}, now)

	r, err := capture.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	snap, _ := r.Snapshot()
	var before int
	for _, s := range snap {
		if s.Src.Port() == uint16(port) && (s.State == event.StateListen && s.Reuse&event.ReuseAddr != 0 || s.State == event.StateTimeWait) {
			before++
		}
	}
	if before != 2 {
		t.Errorf("the snapshot lacks the listener and the TIME_WAIT that predate the recording: %+v", snap)
	}
	replayed := table.New(table.Config{})
	var got []byte
	err = r.Rebuild(ctx, replayed, nil, nil, func(ev *event.Event) error {
		got = jsonl.Append(got, ev)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, live) {
		t.Errorf("the replayed stream differs from the live one:\nlive:\n%s\nreplayed:\n%s", live, got)
	}
	if !bytes.Contains(live, []byte(`"new":"CLOSE","old_ms"`)) || !bytes.Contains(live, []byte(`"reuseaddr":true,"reuseport":false`)) {
		t.Errorf("no state record with the listener's options:\n%s", live)
	}
	if end, ok := r.End(); !ok || end.Events != int64(bytes.Count(live, []byte("\n"))) || end.Reason != capture.EndSignal {
		t.Errorf("end record %+v", end)
	}
	gotTab, _ := replayed.Sockets(table.Query{Ports: []uint16{uint16(port)}}, now)
	if !sameTables(gotTab, want) || len(want) < 6 {
		t.Errorf("the replayed table differs from the live one:\n got %+v\nwant %+v", gotTab, want)
	}
}

// conn is one connection churn made: its client port, when it ended.
type conn struct {
	port uint16
	at   time.Time
}

// churn makes connections to port from workers, a few hundred a second
// each, until stop is closed; it returns every one it made. The server
// resets them (SO_LINGER 0): a churn that left tens of thousands of
// TIME_WAIT sockets would slow every sock_diag dump on the machine for a
// minute (the kernel's hash tables are shared by all namespaces), and with
// them the tests of other packages running meanwhile.
func churn(t *testing.T, l net.Listener, workers int, stop <-chan struct{}) <-chan []conn {
	t.Helper()
	go func() {
		for {
			a, err := l.Accept()
			if err != nil {
				return
			}
			a.(*net.TCPConn).SetLinger(0)
			a.Close()
		}
	}()
	out := make(chan []conn, 1)
	results := make(chan []conn, workers)
	for range workers {
		go func() {
			var done []conn
			defer func() { results <- done }()
			for {
				select {
				case <-stop:
					return
				default:
				}
				c, err := net.Dial("tcp4", l.Addr().String())
				if err != nil {
					continue
				}
				c.Read(make([]byte, 1)) // the server's reset
				port := uint16(c.LocalAddr().(*net.TCPAddr).Port)
				c.Close()
				done = append(done, conn{port, time.Now()})
				time.Sleep(2 * time.Millisecond) // real churn, that leaves the other tests a core
			}
		}()
	}
	go func() {
		var all []conn
		for range workers {
			all = append(all, <-results...)
		}
		out <- all
	}()
	return out
}

// SIGKILL under churn, plain and compressed: replay plays every whole
// event, warns once that the file was cut, and exits 0; every connection
// that ended more than a second (and the 200 ms the ring buffer's wakeup
// and the scheduler may take) before the kill is in the file.
func TestRecordKilled(t *testing.T) {
	tracertest.Require(t)
	tracertest.LockBPF(t)
	bin := buildBinary(t)
	for _, name := range []string{"cap.jsonl", "cap.jsonl.zst"} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			port := freePort(t)
			path := filepath.Join(t.TempDir(), name)
			rec := startRecord(t, ctx, bin, "-o", path, "--port", strconv.Itoa(port))
			l := listenReuse(t, ctx, port)
			stop := make(chan struct{})
			conns := churn(t, l, 1, stop)
			time.Sleep(3 * time.Second)
			killed := time.Now()
			if err := rec.cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			<-rec.exited
			close(stop)
			l.Close()
			done := <-conns

			out, stderr := replayBinJSON(t, ctx, bin, path)
			if strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "twtrace: warning: capture "+path+" is cut at line ") {
				t.Errorf("replay's stderr %q: want one warning naming the file and where it was cut", stderr)
			}
			// Client ports are reused: count the connections on each.
			seen := map[uint16]int{}
			var last time.Time
			for _, m := range out {
				if m["kind"] == "state" && m["old"] == "SYN_SENT" && m["new"] == "ESTABLISHED" && m["dport"] == float64(port) {
					seen[uint16(m["sport"].(float64))]++
				}
				if ts, err := time.Parse(time.RFC3339Nano, str(m["ts"])); err == nil && ts.After(last) {
					last = ts
				}
			}
			bound := killed.Add(-time.Second - 200*time.Millisecond)
			need := map[uint16]int{}
			before := 0
			for _, c := range done {
				if c.at.Before(bound) {
					need[c.port]++
					before++
				}
			}
			missing := 0
			for p, n := range need {
				missing += max(n-seen[p], 0)
			}
			t.Logf("%d connections, %d ended before kill-1.2s; %d events replayed, the last %v before the kill; %s",
				len(done), before, len(out), killed.Sub(last).Round(time.Millisecond), stderr)
			if before < 100 || missing > 0 {
				t.Errorf("%d of the %d connections that ended before kill-1.2s are not in the capture", missing, before)
			}
		})
	}
}

// replayBinJSON runs `twtrace replay --json`, which must exit 0, and parses
// its output.
func replayBinJSON(t *testing.T, ctx context.Context, bin, path string) ([]map[string]any, string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin, "replay", "--json", path)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("replay %s: %v: %s", path, err, stderr.String())
	}
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("replay --json: not JSON: %q", line)
		}
		out = append(out, m)
	}
	return out, stderr.String()
}

// --redact: no address of the run and not the host name in the file; the
// same address is the same token (both ends of a loopback connection).
func TestRecordRedact(t *testing.T) {
	tracertest.Require(t)
	tracertest.LockBPF(t)
	bin := buildBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	port := freePort(t)
	path := filepath.Join(t.TempDir(), "shared.jsonl")
	l := listenReuse(t, ctx, port) // before: in the snapshot
	rec := startRecord(t, ctx, bin, "-o", path, "--port", strconv.Itoa(port), "--redact")
	exchange(t, l)
	captureHas(t, path, func(ev *event.Event) bool { return ev.Kind == event.KindTimeWait })
	rec.cmd.Process.Signal(syscall.SIGINT)
	if err := <-rec.exited; err != nil {
		t.Fatalf("record: %v: %s", err, rec.stderr)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	for _, s := range []string{"127.0.0.1", `"host":"` + host + `"`} {
		if bytes.Contains(raw, []byte(s)) {
			t.Errorf("the redacted capture holds %q", s)
		}
	}
	out, stderr := replayBinJSON(t, ctx, bin, path)
	if stderr != "" {
		t.Errorf("replay: %s", stderr)
	}
	tokens := map[string]bool{}
	for _, m := range out {
		if m["kind"] == "state" && m["sport"] != float64(0) {
			tokens[str(m["saddr"])] = true
			tokens[str(m["daddr"])] = true
		}
	}
	if len(tokens) != 1 {
		t.Errorf("127.0.0.1 on both ends should be one token, got %v", tokens)
	}
	for tok := range tokens {
		if a, err := netip.ParseAddr(tok); err != nil || !a.Is4() || a.As4()[0]&0xf0 != 0xf0 {
			t.Errorf("token %q: want an IPv4 address in 240.0.0.0/4", tok)
		}
	}
	if !bytes.Contains(raw, []byte(`"kind":"socket","ts":`)) || !bytes.Contains(raw, []byte(`"redacted":true`)) {
		t.Errorf("no snapshot or no redacted mark:\n%s", raw)
	}
}

// --max-size: each file a whole capture that replays alone, no warning;
// no more than --keep older ones; the final line says how many files.
func TestRecordRotates(t *testing.T) {
	tracertest.Require(t)
	tracertest.LockBPF(t)
	bin := buildBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	port := freePort(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "tw.jsonl")
	rec := startRecord(t, ctx, bin, "-o", path, "--port", strconv.Itoa(port), "--max-size", "64K", "--keep", "2")
	l := listenReuse(t, ctx, port)
	stop := make(chan struct{})
	conns := churn(t, l, 1, stop)
	time.Sleep(3500 * time.Millisecond)
	close(stop)
	l.Close()
	<-conns
	rec.cmd.Process.Signal(syscall.SIGTERM)
	if err := <-rec.exited; err != nil {
		t.Fatalf("record: %v: %s", err, rec.stderr)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "tw*.jsonl"))
	if len(files) != 3 || !strings.Contains(rec.stderr.String(), " files ("+path+", the newest, and "+capture.Numbered(path, 1)) {
		t.Fatalf("files %v; stderr %s", files, rec.stderr)
	}
	for _, f := range files {
		out, stderr := replayBinJSON(t, ctx, bin, f)
		if stderr != "" || len(out) == 0 {
			t.Errorf("replay %s: %d events, %q", f, len(out), stderr)
		}
		r, err := capture.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		for r.Next(new(event.Event)) == nil {
		}
		end, _ := r.End()
		if want := map[bool]string{true: capture.EndSignal, false: capture.EndRotated}[f == path]; end.Reason != want {
			t.Errorf("%s ends %q, want %q", f, end.Reason, want)
		}
		r.Close()
	}
}
