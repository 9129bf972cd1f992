package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twtrace/twtrace/internal/tracertest"
)

// ssStates maps ss's state names to twtrace's.
var ssStates = map[string]string{
	"ESTAB": "ESTABLISHED", "TIME-WAIT": "TIME_WAIT", "LISTEN": "LISTEN", "CLOSE-WAIT": "CLOSE_WAIT",
	"FIN-WAIT-1": "FIN_WAIT1", "FIN-WAIT-2": "FIN_WAIT2", "SYN-SENT": "SYN_SENT", "SYN-RECV": "SYN_RECV",
	"LAST-ACK": "LAST_ACK", "CLOSING": "CLOSING",
}

type ssSocket struct {
	state string
	pid   int
	timer time.Duration // TIME_WAIT only
}

var (
	ssLine  = regexp.MustCompile(`^(\S+)\s+\d+\s+\d+\s+(\S+)\s+(\S+)(.*)$`)
	ssPid   = regexp.MustCompile(`pid=(\d+)`)
	ssTimer = regexp.MustCompile(`timer:\(timewait,(\d+)sec`)
)

// ss runs `ss -tanp -o` for a port and indexes its sockets by "local remote".
func ss(t *testing.T, port int) map[string]ssSocket {
	t.Helper()
	p := strconv.Itoa(port)
	out, err := exec.Command("ss", "-H", "-tanp", "-o", "(", "sport", "=", ":"+p, "or", "dport", "=", ":"+p, ")").Output()
	if err != nil {
		t.Fatalf("ss: %v", err)
	}
	m := map[string]ssSocket{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		f := ssLine.FindStringSubmatch(sc.Text())
		if f == nil {
			t.Fatalf("unparsed ss line %q", sc.Text())
		}
		s := ssSocket{state: ssStates[f[1]]}
		if pm := ssPid.FindStringSubmatch(f[4]); pm != nil {
			s.pid, _ = strconv.Atoi(pm[1])
		}
		if tm := ssTimer.FindStringSubmatch(f[4]); tm != nil {
			secs, _ := strconv.Atoi(tm[1])
			s.timer = time.Duration(secs) * time.Second
		}
		m[strings.ReplaceAll(f[2], "*", "0")+" "+strings.ReplaceAll(f[3], "*", "0")] = s
	}
	return m
}

// On a busy loopback port, `twtrace sockets --port P --json` agrees with
// `ss -tanp -o`: the same sockets, states and owners, TIME_WAIT timers within 1 s.
func TestSocketsAgreesWithSS(t *testing.T) {
	tracertest.Require(t)
	port := freePort(t)
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	l, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var open []net.Conn
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	for i := range 30 {
		c, err := net.Dial("tcp4", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		a, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 { // a third end in TIME_WAIT on the server's side
			a.Close()
			if _, err := c.Read(make([]byte, 1)); err != io.EOF {
				t.Fatal(err)
			}
			c.Close()
			continue
		}
		open = append(open, c, a)
	}
	time.Sleep(1500 * time.Millisecond)

	code, out, stderr := runCLI("sockets", "--port", strconv.Itoa(port), "--json")
	now := time.Now()
	kernel := ss(t, port)
	if code != 0 {
		t.Fatalf("twtrace sockets: exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(kernel) || len(kernel) != 1+20*2+10 {
		t.Fatalf("twtrace lists %d sockets, ss %d; want 51 (a listener, 20 pairs, 10 TIME_WAIT)", len(lines), len(kernel))
	}
	for _, line := range lines {
		var s struct {
			State       string `json:"state"`
			Saddr       string `json:"saddr"`
			Sport       int    `json:"sport"`
			Daddr       string `json:"daddr"`
			Dport       int    `json:"dport"`
			OwnerPID    *int   `json:"owner_pid"`
			RemainingMS *int64 `json:"remaining_ms"`
			Source      string `json:"source"`
			ReuseAddr   *bool  `json:"reuseaddr"`
			ReusePort   *bool  `json:"reuseport"`
		}
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatalf("bad line %q: %v", line, err)
		}
		key := net.JoinHostPort(s.Saddr, strconv.Itoa(s.Sport)) + " " + net.JoinHostPort(s.Daddr, strconv.Itoa(s.Dport))
		k, ok := kernel[key]
		if !ok {
			t.Errorf("%s: not in ss", key)
			continue
		}
		if s.State != k.state || s.Source != "sock_diag" {
			t.Errorf("%s: state %s (source %s), ss says %s", key, s.State, s.Source, k.state)
		}
		// Go sets SO_REUSEADDR on listeners, not on dialled sockets; the
		// server's sockets (and their TIME_WAITs) inherit the listener's.
		server := s.Sport == port
		switch {
		case s.ReuseAddr == nil || s.ReusePort == nil:
			t.Errorf("%s: reuse options unknown", key)
		case *s.ReuseAddr != server || *s.ReusePort:
			t.Errorf("%s: reuseaddr %v reuseport %v, want %v and false", key, *s.ReuseAddr, *s.ReusePort, server)
		}
		switch {
		case k.pid != 0 && (s.OwnerPID == nil || *s.OwnerPID != k.pid):
			t.Errorf("%s: owner %v, ss says pid %d", key, s.OwnerPID, k.pid)
		case k.pid == 0 && s.OwnerPID != nil:
			t.Errorf("%s: owner %d, ss shows none", key, *s.OwnerPID)
		}
		if s.State == "TIME_WAIT" {
			if s.RemainingMS == nil {
				t.Errorf("%s: TIME_WAIT without remaining_ms", key)
				continue
			}
			rem := time.Duration(*s.RemainingMS)*time.Millisecond - time.Since(now)
			if d := rem - k.timer; d < -time.Second || d > 2*time.Second {
				t.Errorf("%s: %v left, ss says %v (whole seconds)", key, rem, k.timer)
			}
		} else if k.pid != os.Getpid() {
			t.Errorf("%s: ss owner %d, want the test", key, k.pid)
		}
	}
}

// Without privileges `sockets` still lists what sock_diag shows, with the
// reuse options unknown ("?") and one line on stderr naming what is missing.
func TestSocketsUnprivileged(t *testing.T) {
	tracertest.Require(t) // root, to drop to nobody
	dir, err := os.MkdirTemp("", "twtrace-unpriv-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := dir + "/twtrace"
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port

	cmd := exec.Command(bin, "sockets", "--port", strconv.Itoa(port))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	cmd.Dir = dir
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("twtrace sockets as nobody: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "REUSE unknown (?): the socket iterator needs CAP_BPF and CAP_PERFMON") {
		t.Errorf("stderr %q: want one line naming the missing capabilities", stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], "REUSE") ||
		!regexp.MustCompile(`^LISTEN\s+127\.0\.0\.1:`+strconv.Itoa(port)+`\s+0\.0\.0\.0:\*\s+-\s+\?\s+[0-9a-f]+$`).MatchString(lines[1]) {
		t.Errorf("as nobody:\n%s\nwant the listener, owner and reuse unknown", stdout.String())
	}
}

// The owner of a socket in a container shows its container id, found through
// /proc/PID/cgroup as for docker's systemd driver (docker-<id>.scope): a
// helper process is moved into such a cgroup of the name=systemd hierarchy
// (no controllers: nothing is limited), which is removed afterwards.
func TestSocketsShowContainer(t *testing.T) {
	tracertest.Require(t)
	hier := "/sys/fs/cgroup/systemd" // cgroup v1, as on these machines
	if _, err := os.Stat(filepath.Join(hier, "cgroup.procs")); err != nil {
		hier = "/sys/fs/cgroup" // a cgroup v2 host
		if _, err := os.Stat(filepath.Join(hier, "cgroup.procs")); err != nil {
			tracertest.Unavailable(t, fmt.Errorf("no writable cgroup hierarchy: %w", err))
		}
	}
	const id = "4f1c2e3d5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d"
	dir := filepath.Join(hier, "docker-"+id+".scope")
	if err := os.Mkdir(dir, 0o755); err != nil {
		tracertest.Unavailable(t, err)
	}
	defer os.Remove(dir) // after the helper exits (deferred first, runs last)

	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), listenHelperEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	port, perr := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || perr != nil {
		t.Fatalf("helper: %q %v", line, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		t.Fatalf("move the helper into %s: %v", dir, err)
	}

	code, out, stderr := runCLI("sockets", "--port", strconv.Itoa(port), "--json")
	if code != 0 {
		t.Fatalf("twtrace sockets: exit %d: %s", code, stderr)
	}
	var s struct {
		State     string `json:"state"`
		OwnerPID  int    `json:"owner_pid"`
		Container string `json:"container"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &s); err != nil {
		t.Fatalf("%q: %v", out, err)
	}
	if s.State != "LISTEN" || s.OwnerPID != cmd.Process.Pid || s.Container != id {
		t.Errorf("sockets --json: %s; want the helper's LISTEN with container %s", out, id)
	}
	_, text, _ := runCLI("sockets", "--port", strconv.Itoa(port))
	lines := strings.Split(text, "\n")
	if !strings.Contains(lines[0], "CONTAINER") || !strings.Contains(lines[1], " "+id[:12]+" ") {
		t.Errorf("sockets:\n%s\nwant a CONTAINER column with %s", text, id[:12])
	}
}
