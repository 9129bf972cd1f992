package main

// twtrace serve as a fleet runs it: the real binary, as root, scraped over
// HTTP while a scripted scenario runs on loopback, its metrics read with
// the Prometheus text parser, stopped by a signal.

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/sys/unix"

	"github.com/twtrace/twtrace/internal/tracertest"
)

// serveProc is a running `twtrace serve`.
type serveProc struct {
	cmd    *exec.Cmd
	url    string
	stderr *strings.Builder
	errc   chan error
	netns  map[string]bool // values of the netns label seen
}

func startServe(t *testing.T, bin string, args ...string) *serveProc {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	args = append([]string{"serve", "--metrics-addr", addr, "--log-format", "json"}, args...)
	cmd := exec.Command(bin, args...)
	p := &serveProc{cmd: cmd, url: "http://" + addr, stderr: &strings.Builder{}, errc: make(chan error, 1),
		netns: map[string]bool{}}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.errc <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-p.errc
		}
	})
	return p
}

// get returns the status and body of a GET.
func (p *serveProc) get(t *testing.T, path string) (int, string) {
	t.Helper()
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(p.url + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// waitReady polls /readyz until it says 200 (bounded), checking that it
// said 503 until then and that the programs are attached when it does.
func (p *serveProc) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var codes []int
	for {
		if time.Now().After(deadline) {
			t.Fatalf("serve not ready after 20 s; /readyz said %v; stderr:\n%s", codes, p.stderr.String())
		}
		if code, _ := p.get(t, "/healthz"); code != http.StatusOK {
			time.Sleep(5 * time.Millisecond)
			continue
		}
		code, body := p.get(t, "/readyz")
		codes = append(codes, code)
		if code == http.StatusOK {
			break
		}
		if code != http.StatusServiceUnavailable || !strings.HasPrefix(body, "not ready: ") {
			t.Fatalf("/readyz before ready: %d %q", code, body)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if len(bpfProgIDs(t, p.cmd.Process.Pid)) == 0 {
		t.Fatal("/readyz says ready, but serve holds no BPF program")
	}
	// The listener opens before the programs load (hundreds of ms): a
	// probe sees "not ready" first.
	if len(codes) < 2 {
		t.Errorf("/readyz said ready at its first answer: the listener opened after the programs were attached")
	}
}

// metrics scrapes /metrics and parses it with the Prometheus text parser:
// name → "label=value,..." (sorted) → value (a histogram's count). A netns
// label (--by-netns) is summed over, and its values kept in p.netns.
func (p *serveProc) metrics(t *testing.T) map[string]map[string]float64 {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, p.url+"/metrics", nil)
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return p.flatten(mfs)
}

func (p *serveProc) flatten(mfs map[string]*dto.MetricFamily) map[string]map[string]float64 {
	out := map[string]map[string]float64{}
	for name, mf := range mfs {
		s := map[string]float64{}
		for _, m := range mf.GetMetric() {
			var kv []string
			for _, l := range m.GetLabel() {
				if l.GetName() == "netns" {
					p.netns[l.GetValue()] = true
					continue
				}
				kv = append(kv, l.GetName()+"="+l.GetValue())
			}
			sort.Strings(kv)
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue() + m.GetUntyped().GetValue()
			if h := m.GetHistogram(); h != nil {
				v = float64(h.GetSampleCount())
			}
			s[strings.Join(kv, ",")] += v
		}
		out[name] = s
	}
	return out
}

// stop signals serve and checks it exits 0, logs JSON (saying whether the
// kernel aggregated) and leaves no program.
func (p *serveProc) stop(t *testing.T, sig syscall.Signal, aggregating bool) {
	t.Helper()
	progs := bpfProgIDs(t, p.cmd.Process.Pid)
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.errc:
		if err != nil {
			t.Fatalf("serve after %v: %v; stderr:\n%s", sig, err, p.stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("serve still running 20 s after %v", sig)
	}
	var msgs []string
	sc := bufio.NewScanner(strings.NewReader(p.stderr.String()))
	for sc.Scan() {
		var line struct {
			Level, Msg, Signal string
			Aggregating        *bool `json:"kernel_aggregation"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil || line.Level == "" || line.Msg == "" {
			t.Errorf("a log line that is not JSON with level and msg: %q", sc.Text())
			continue
		}
		if line.Level == "ERROR" || line.Level == "WARN" {
			t.Errorf("logged %s: %s", line.Level, line.Msg)
		}
		if line.Msg == "stopping" && line.Signal != sig.String() {
			t.Errorf("stopping on signal %q, want %q", line.Signal, sig.String())
		}
		if line.Msg == "programs attached" && (line.Aggregating == nil || *line.Aggregating != aggregating) {
			t.Errorf("programs attached with kernel_aggregation %v, want %v", line.Aggregating, aggregating)
		}
		msgs = append(msgs, line.Msg)
	}
	for _, want := range []string{"serving", "programs attached", "ready", "stopping", "stopped: every program detached"} {
		if !slices.Contains(msgs, want) {
			t.Errorf("no log line %q in %q", want, msgs)
		}
	}
	for _, id := range progs {
		if programExists(id) {
			t.Errorf("BPF program %d still loaded after serve exited", id)
		}
	}
}

// delta is after minus before for one series (absent counts as 0).
func delta(before, after map[string]map[string]float64, name, labels string) float64 {
	return after[name][labels] - before[name][labels]
}

// checkDeltas checks that every series of a metric moved by exactly what
// want says, and the others not at all.
func checkDeltas(t *testing.T, before, after map[string]map[string]float64, name string, want map[string]float64) {
	t.Helper()
	labels := map[string]bool{}
	for l := range after[name] {
		labels[l] = true
	}
	for l := range want {
		labels[l] = true
	}
	for l := range labels {
		if d := delta(before, after, name, l); d != want[l] {
			t.Errorf("%s{%s}: +%v, want +%v", name, l, d, want[l])
		}
	}
}

// plainBind binds 127.0.0.1:port without SO_REUSEADDR and returns the error.
func plainBind(t *testing.T, port int) error {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	return unix.Bind(fd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}})
}

// serveScenario runs serve with args, plays the scenario on a fresh port,
// checks every delta, stops serve, and returns the port (its TIME_WAITs last a minute).
func serveScenario(t *testing.T, bin string, args []string) int {
	port := freePort(t)
	aggregating := len(args) == 0
	ready := filepath.Join(t.TempDir(), "ready")
	// The filter keeps the rest of the machine (other tests) out of the counts.
	p := startServe(t, bin, append(args, "--port", strconv.Itoa(port), "--ready-file", ready, "--wakeup", "20ms")...)
	p.waitReady(t)
	if _, err := os.Stat(ready); err != nil {
		t.Errorf("ready, but no --ready-file: %v", err)
	}
	if code, body := p.get(t, "/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, body := p.get(t, "/why?port="+strconv.Itoa(port)); code != http.StatusNotFound || strings.Count(body, "\n") != 1 {
		t.Errorf("/why without --why: %d %q, want 404 and one line", code, body)
	}
	before := p.metrics(t)

	const n = 5
	serverClosesFirst(t, t.Context(), port, n)
	if err := plainBind(t, port); !errors.Is(err, unix.EADDRINUSE) {
		t.Fatalf("a plain bind() beside the TIME_WAITs: %v, want EADDRINUSE", err)
	}

	// The counters reach their values within a second (the ring buffer is
	// read every 20 ms); then they must stay there.
	bindFail := "errno=EADDRINUSE,port=" + strconv.Itoa(port) + ",syscall=bind"
	var after map[string]map[string]float64
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		after = p.metrics(t)
		if delta(before, after, "twtrace_transitions_total", "from=FIN_WAIT2,to=CLOSE") >= n &&
			delta(before, after, "twtrace_syscall_failures_total", bindFail) >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("counters not reached after 10 s: %v", after)
		}
	}
	time.Sleep(300 * time.Millisecond)
	after = p.metrics(t)

	// Every transition of the scenario, exactly: per connection five on
	// each side; the listener's two.
	want := map[string]float64{
		"from=CLOSE,to=LISTEN": 1, "from=LISTEN,to=CLOSE": 1,
		"from=CLOSE,to=SYN_SENT": n, "from=SYN_SENT,to=ESTABLISHED": n, "from=ESTABLISHED,to=CLOSE_WAIT": n,
		"from=CLOSE_WAIT,to=LAST_ACK": n, "from=LAST_ACK,to=CLOSE": n,
		"from=LISTEN,to=SYN_RECV": n, "from=SYN_RECV,to=ESTABLISHED": n, "from=ESTABLISHED,to=FIN_WAIT1": n,
		"from=FIN_WAIT1,to=FIN_WAIT2": n, "from=FIN_WAIT2,to=CLOSE": n,
	}
	checkDeltas(t, before, after, "twtrace_transitions_total", want)
	// The time in the old state is known for every transition but a
	// socket's first (from CLOSE, and an accepted socket's LISTEN).
	timed := map[string]float64{"state=LISTEN": 1, "state=SYN_SENT": n, "state=SYN_RECV": n, "state=ESTABLISHED": 2 * n,
		"state=FIN_WAIT1": n, "state=FIN_WAIT2": n, "state=CLOSE_WAIT": n, "state=LAST_ACK": n}
	checkDeltas(t, before, after, "twtrace_state_duration_seconds", timed)
	for labels := range after["twtrace_syscall_failures_total"] {
		w := 0.0
		if labels == bindFail {
			w = 1
		}
		if d := delta(before, after, "twtrace_syscall_failures_total", labels); d != w {
			t.Errorf("failures %s: +%v, want +%v", labels, d, w)
		}
	}
	if d := delta(before, after, "twtrace_syscall_failures_total", bindFail); d != 1 {
		t.Errorf("EADDRINUSE on port %d: +%v, want exactly +1", port, d)
	}
	if d := delta(before, after, "twtrace_timewait_enters_total", ""); d != n {
		t.Errorf("TIME_WAIT enters: +%v, want +%d", d, n)
	}
	if got := after["twtrace_timewait_sockets"]["port="+strconv.Itoa(port)]; got != n {
		t.Errorf("TIME_WAIT sockets on port %d: %v, want %d (%v)", port, got, n, after["twtrace_timewait_sockets"])
	}
	if got := after["twtrace_sockets"]["state=TIME_WAIT"]; got != n {
		t.Errorf("TIME_WAIT sockets: %v, want %d", got, n)
	}
	if got := after["twtrace_events_lost_total"][""]; got != 0 {
		t.Errorf("lost: %v", got)
	}
	for _, name := range []string{"twtrace_build_info", "process_cpu_seconds_total", "go_goroutines", "twtrace_kernel_tcpext_tw_total"} {
		if len(after[name]) == 0 {
			t.Errorf("no %s", name)
		}
	}
	// The stream carries every transition, or with the kernel's
	// aggregation only the TIME_WAIT enters, the connect()s and the
	// listener's two.
	wantStream := float64(10*n + 2)
	if aggregating {
		wantStream = 2*n + 2
	}
	if d := delta(before, after, "twtrace_events_total", "kind=state"); d != wantStream {
		t.Errorf("state events streamed: +%v, want +%v", d, wantStream)
	}
	if !aggregating {
		host, err := os.Readlink("/proc/self/ns/net")
		if err != nil {
			t.Fatal(err)
		}
		for v := range p.netns {
			if "net:["+v+"]" != host {
				t.Errorf("netns label %q, want the host's %s", v, host)
			}
		}
		if len(p.netns) != 1 {
			t.Errorf("netns values %v, want the host's", p.netns)
		}
	}
	p.stop(t, syscall.SIGTERM, aggregating)
	return port
}

func TestServeCLI(t *testing.T) {
	tracertest.Require(t)
	tracertest.LockBPF(t)
	bin := buildBinary(t)
	var port int
	for _, mode := range []struct {
		name string
		args []string
	}{
		{"kernel_aggregation", nil},
		{"stream_by_netns", []string{"--by-netns"}},
	} {
		t.Run(mode.name, func(t *testing.T) { port = serveScenario(t, bin, mode.args) })
	}
	if t.Failed() {
		return
	}
	// With --why, /why answers as `why --json` does, on the same listener;
	// the TIME_WAITs block the port for a minute.
	w := startServe(t, bin, "--why", "--port", strconv.Itoa(port))
	w.waitReady(t)
	code, body := w.get(t, "/why?port="+strconv.Itoa(port))
	var report struct {
		Port    int
		Verdict string
		Causes  []string
	}
	if err := json.Unmarshal([]byte(body), &report); code != http.StatusOK || err != nil {
		t.Fatalf("/why: %d %q (%v)", code, body, err)
	}
	if report.Port != port || report.Verdict != "blocked" || !slices.Contains(report.Causes, "timewait") {
		t.Errorf("/why: %+v, want port %d blocked by timewait", report, port)
	}
	cli, err := exec.Command(bin, "why", strconv.Itoa(port), "--json").Output()
	var cliReport struct{ Verdict string }
	if json.Unmarshal(cli, &cliReport); cliReport.Verdict != report.Verdict {
		t.Errorf("why --json says %q (%v), /why %q", cliReport.Verdict, err, report.Verdict)
	}
	for _, bad := range []string{"0", "70000", "http", ""} {
		code, body := w.get(t, "/why?port="+bad)
		if code != http.StatusBadRequest || strings.Count(body, "\n") != 1 || !strings.Contains(body, "port") {
			t.Errorf("/why?port=%s: %d %q, want 400 and one sentence", bad, code, body)
		}
	}
	w.stop(t, syscall.SIGHUP, true)
}
