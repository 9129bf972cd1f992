package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
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

// ssTimers maps ss -o's timer names to twtrace's.
var ssTimers = map[string]string{"on": "retransmit", "keepalive": "keepalive", "timewait": "timewait", "persist": "probe"}

type ssSocket struct {
	state        string
	recvQ, sendQ int
	users        []string // "pid/fd", sorted
	timer        string   // twtrace's name; "" for none
	left         time.Duration
	retrans      int
	inode        int
	cookie       string
}

var (
	ssLine  = regexp.MustCompile(`^(\S+)\s+(\d+)\s+(\d+)\s+(\S+)\s+(\S+)(.*)$`)
	ssUser  = regexp.MustCompile(`pid=(\d+),fd=(\d+)`)
	ssTimer = regexp.MustCompile(`timer:\((\w+),([^,]*),(\d+)\)`)
	ssInode = regexp.MustCompile(`ino:(\d+)`)
	ssSK    = regexp.MustCompile(`sk:([0-9a-f]+)`)
	// ss prints a timer as 1min, 14sec, 204ms, 092ms or 1.200ms (1.2 s),
	// and as nothing when it is due now.
	ssTime = regexp.MustCompile(`^(?:(\d+)min)?(?:(\d+)(sec|\.))?(?:(\d+)ms)?$`)
)

// ssDuration parses a timer's time as ss prints it.
func ssDuration(t *testing.T, s string) time.Duration {
	t.Helper()
	m := ssTime.FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("ss timer %q", s)
	}
	n := func(i int) time.Duration { v, _ := strconv.Atoi(m[i]); return time.Duration(v) }
	return n(1)*time.Minute + n(2)*time.Second + n(4)*time.Millisecond
}

// ss runs `ss -tanpoe` for ports and indexes its sockets by "local remote".
func ss(t *testing.T, ports ...int) map[string]ssSocket {
	t.Helper()
	args := []string{"-H", "-tanpoe", "("}
	for i, port := range ports {
		p := strconv.Itoa(port)
		if i > 0 {
			args = append(args, "or")
		}
		args = append(args, "sport", "=", ":"+p, "or", "dport", "=", ":"+p)
	}
	out, err := exec.Command("ss", append(args, ")")...).Output()
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
		s.recvQ, _ = strconv.Atoi(f[2])
		s.sendQ, _ = strconv.Atoi(f[3])
		for _, u := range ssUser.FindAllStringSubmatch(f[6], -1) {
			s.users = append(s.users, u[1]+"/"+u[2])
		}
		slices.Sort(s.users)
		if tm := ssTimer.FindStringSubmatch(f[6]); tm != nil && tm[1] != "off" {
			s.timer, s.left = ssTimers[tm[1]], ssDuration(t, tm[2])
			s.retrans, _ = strconv.Atoi(tm[3])
		}
		if im := ssInode.FindStringSubmatch(f[6]); im != nil {
			s.inode, _ = strconv.Atoi(im[1])
		}
		if sk := ssSK.FindStringSubmatch(f[6]); sk != nil {
			s.cookie = sk[1]
		}
		m[ssAddr(f[4])+" "+ssAddr(f[5])] = s
	}
	return m
}

// ssAddr writes an address of ss as twtrace's JSON gives it: ss prints "*"
// for an unset port, and "*" for the unspecified IPv6 address.
func ssAddr(a string) string {
	if strings.HasPrefix(a, "*:") {
		a = "[::]" + a[1:]
	}
	if strings.HasSuffix(a, ":*") {
		a = strings.TrimSuffix(a, "*") + "0"
	}
	return a
}

// pids are the distinct processes holding the socket.
func (s ssSocket) pids() []int {
	var out []int
	for _, u := range s.users {
		pid, _ := strconv.Atoi(u[:strings.IndexByte(u, '/')])
		if !slices.Contains(out, pid) {
			out = append(out, pid)
		}
	}
	return out
}

// listedSocket is a line of `twtrace sockets --json`.
type listedSocket struct {
	State       string `json:"state"`
	Saddr       string `json:"saddr"`
	Sport       int    `json:"sport"`
	Daddr       string `json:"daddr"`
	Dport       int    `json:"dport"`
	Inode       int    `json:"inode"`
	Sock        string `json:"sock"`
	OwnerPID    *int   `json:"owner_pid"`
	RemainingMS *int64 `json:"remaining_ms"`
	Source      string `json:"source"`
	ReuseAddr   *bool  `json:"reuseaddr"`
	ReusePort   *bool  `json:"reuseport"`
	RecvQ       *int   `json:"recv_q"`
	SendQ       *int   `json:"send_q"`
	Timer       string `json:"timer"`
	TimerMS     int64  `json:"timer_ms"`
	Retrans     int    `json:"retrans"`
	Owners      []struct {
		PID int   `json:"pid"`
		FDs []int `json:"fds"`
	} `json:"owners"`
}

// users lists the holders as ss does, "pid/fd", sorted.
func (s *listedSocket) users() []string {
	var out []string
	for _, o := range s.Owners {
		for _, fd := range o.FDs {
			out = append(out, strconv.Itoa(o.PID)+"/"+strconv.Itoa(fd))
		}
	}
	slices.Sort(out)
	return out
}

// On a busy loopback port, `twtrace sockets --port P --json` agrees with
// `ss -tanpoe`: the same sockets, states, queues, every owner and fd, inodes,
// cookies and timers (TIME_WAIT's, keepalive, a zero-window probe, a SYN's
// retransmission, an orphan FIN_WAIT2's), the times within 1 s. The text
// listing keeps its columns with v4-mapped addresses in them.
func TestSocketsAgreesWithSS(t *testing.T) {
	tracertest.Require(t)
	tracertest.LockBPF(t) // the listing runs the socket iterator; and no load test runs meanwhile
	sc := newSSScenario(t)
	time.Sleep(1500 * time.Millisecond)

	code, out, stderr := runCLI("sockets", "--port", strconv.Itoa(sc.port), "--port", strconv.Itoa(sc.mapped), "--json")
	now := time.Now()
	kernel := ss(t, sc.port, sc.mapped)
	if code != 0 {
		t.Fatalf("twtrace sockets: exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(kernel) || len(kernel) != 1+19*2+10+2+4 {
		t.Fatalf("twtrace lists %d sockets, ss %d; want 55 (a listener, 19 pairs, 10 TIME_WAIT, an orphan and its peer; "+
			"a listener, its queued connection, a client of it and one in SYN_SENT)", len(lines), len(kernel))
	}
	seen := map[string]bool{}
	for _, line := range lines {
		var s listedSocket
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatalf("bad line %q: %v", line, err)
		}
		key := net.JoinHostPort(s.Saddr, strconv.Itoa(s.Sport)) + " " + net.JoinHostPort(s.Daddr, strconv.Itoa(s.Dport))
		k, ok := kernel[key]
		if !ok {
			t.Errorf("%s: not in ss", key)
			continue
		}
		seen[s.State+" "+s.Timer] = true
		if s.State != k.state || s.Source != "sock_diag" {
			t.Errorf("%s: state %s (source %s), ss says %s", key, s.State, s.Source, k.state)
		}
		// Go sets SO_REUSEADDR on listeners, not on dialled sockets; the
		// server's sockets (and their TIME_WAITs) inherit the listener's.
		// The v4-mapped listener is a plain socket.
		server := s.Sport == sc.port
		switch {
		case s.ReuseAddr == nil || s.ReusePort == nil:
			t.Errorf("%s: reuse options unknown", key)
		case *s.ReuseAddr != server || *s.ReusePort:
			t.Errorf("%s: reuseaddr %v reuseport %v, want %v and false", key, *s.ReuseAddr, *s.ReusePort, server)
		}
		if s.RecvQ == nil || s.SendQ == nil || *s.RecvQ != k.recvQ || *s.SendQ != k.sendQ {
			t.Errorf("%s: queues %v/%v, ss says %d/%d", key, s.RecvQ, s.SendQ, k.recvQ, k.sendQ)
		}
		if s.Inode != k.inode || s.Sock != k.cookie {
			t.Errorf("%s: inode %d sk %s, ss says ino %d sk %s", key, s.Inode, s.Sock, k.inode, k.cookie)
		}
		if u := s.users(); !slices.Equal(u, k.users) {
			t.Errorf("%s: owners %v, ss says %v", key, u, k.users)
		}
		pids := k.pids()
		switch {
		case len(pids) > 0 && (s.OwnerPID == nil || !slices.Contains(pids, *s.OwnerPID)):
			t.Errorf("%s: owner %v, ss says %v", key, s.OwnerPID, k.users)
		case len(pids) == 0 && s.OwnerPID != nil:
			t.Errorf("%s: owner %d, ss shows none", key, *s.OwnerPID)
		case len(pids) == 0 && s.State != "TIME_WAIT" && !sc.unowned[key]:
			t.Errorf("%s: no owner in ss, want the test", key)
		}
		for _, pid := range pids {
			if pid != os.Getpid() && pid != sc.child {
				t.Errorf("%s: ss owner %d, want the test or its child", key, pid)
			}
		}
		if s.Timer != k.timer {
			t.Errorf("%s: %s, queues %v/%v, timer %q; ss says %s %d/%d %q", key, s.State, *s.RecvQ, *s.SendQ, s.Timer,
				k.state, k.recvQ, k.sendQ, k.timer)
			continue
		}
		// ss reads after twtrace: a retransmission (or a zero-window
		// probe) in between adds one, never more in the few ms apart, and
		// re-arms the timer.
		left := time.Duration(s.TimerMS)*time.Millisecond - time.Since(now)
		again := k.retrans - s.Retrans
		if again < 0 || again > 1 {
			t.Errorf("%s: %s %s %v, %d retransmissions, ss says %d", key, s.State, s.Timer, left, s.Retrans, k.retrans)
		}
		// The times were read a moment apart: within 1 s (ss truncates).
		if d := left - k.left; s.Timer != "" && again == 0 && (d < -time.Second || d > 2*time.Second) {
			t.Errorf("%s: %s %v left, ss says %v", key, s.Timer, left, k.left)
		}
		if s.Timer == "timewait" && (s.RemainingMS == nil || *s.RemainingMS != s.TimerMS) {
			t.Errorf("%s: remaining_ms %v, timer_ms %d", key, s.RemainingMS, s.TimerMS)
		}
	}
	for _, want := range []string{"LISTEN ", "TIME_WAIT timewait", "FIN_WAIT2 timewait", "ESTABLISHED keepalive",
		"ESTABLISHED probe", "SYN_SENT retransmit"} {
		if !seen[want] {
			t.Errorf("no %s socket: the scenario did not make one (%v)", want, seen)
		}
	}

	code, out, _ = runCLI("sockets", "--port", strconv.Itoa(sc.port), "--port", strconv.Itoa(sc.mapped))
	if code != 0 {
		t.Fatalf("twtrace sockets: exit %d", code)
	}
	requireColumns(t, out)
}

// requireColumns fails unless every row of a listing has each column where
// its title is (OWNERS, the last, may be as long as it needs).
func requireColumns(t *testing.T, out string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	header := lines[0]
	titles := strings.Fields(header)
	for _, l := range lines[1 : len(lines)-1] {
		for _, title := range titles[1:] {
			col := strings.Index(header, " "+title+" ") + 1
			if title == titles[len(titles)-1] {
				col = strings.LastIndex(header, " "+title) + 1
			}
			if col <= 0 || col >= len(l) || l[col-1] != ' ' || l[col] == ' ' {
				t.Errorf("column %s is not where its title is:\n%s\n%s", title, header, l)
				break
			}
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
		!regexp.MustCompile(`^LISTEN\s+0\s+\d+\s+127\.0\.0\.1:`+strconv.Itoa(port)+`\s+0\.0\.0\.0:\*\s+-\s+\?\s+\d+\s+[0-9a-f]+\s+-$`).MatchString(lines[1]) {
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
	t.Cleanup(func() { os.Remove(dir) }) // after the helper exits (registered first, runs last)

	line, pid := startHelper(t, listenHelperEnv)
	port, err := strconv.Atoi(line)
	if err != nil {
		t.Fatalf("helper: %q", line)
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
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
	if s.State != "LISTEN" || s.OwnerPID != pid || s.Container != id {
		t.Errorf("sockets --json: %s; want the helper's LISTEN with container %s", out, id)
	}
	_, text, _ := runCLI("sockets", "--port", strconv.Itoa(port))
	lines := strings.Split(text, "\n")
	if !strings.Contains(lines[0], "CONTAINER") || !strings.Contains(lines[1], " "+id[:12]+" ") {
		t.Errorf("sockets:\n%s\nwant a CONTAINER column with %s", text, id[:12])
	}
}

// -N lists another network namespace, named (ip netns) or by path, as
// ss -N does; --count sums its sockets up by port and state. A name or
// path that is no network namespace is one sentence and exit 2.
func TestSocketsInNamespace(t *testing.T) {
	ns := tracertest.NewNetNS(t)
	tracertest.LockBPF(t) // the listing runs the socket iterator
	var l net.Listener
	var conns []net.Conn
	if err := ns.Do(func() error {
		var err error
		if l, err = net.Listen("tcp4", "127.0.0.1:7030"); err != nil {
			return err
		}
		for range 3 {
			c, err := net.Dial("tcp4", "127.0.0.1:7030")
			if err != nil {
				return err
			}
			conns = append(conns, c)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for range conns {
		a, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	path := "/proc/" + strconv.Itoa(os.Getpid()) + "/fd/" + strconv.Itoa(ns.FD())

	code, out, stderr := runCLI("sockets", "-N", path, "--json")
	if code != 0 {
		t.Fatalf("sockets -N %s: exit %d: %s", path, code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 7 || !strings.Contains(out, `"netns":`+strconv.Itoa(int(ns.Inode()))) {
		t.Fatalf("sockets -N: %d sockets, want the namespace's 7:\n%s", len(lines), out)
	}
	code, out, _ = runCLI("sockets", "-N", path, "--count")
	if code != 0 {
		t.Fatalf("sockets --count: exit %d", code)
	}
	requireLines(t, out,
		`^PORT\s+LISTEN\s+ESTABLISHED\s+TOTAL$`,
		`^7030\s+1\s+3\s+4$`,
		`^ephem\s+0\s+3\s+3$`, // the clients are certain: their peers are on the listener's port
		`^total\s+1\s+6\s+7$`)

	for _, c := range []struct{ arg, want string }{
		{"no-such-netns-here", "-N no-such-netns-here: cannot open /run/netns/no-such-netns-here"},
		{"/proc/self/ns/mnt", "-N /proc/self/ns/mnt: /proc/self/ns/mnt is not a network namespace"},
		{"/etc/hostname", "is not a network namespace"},
	} {
		code, _, stderr := runCLI("sockets", "-N", c.arg)
		if code != 2 || !strings.Contains(stderr, c.want) || strings.Count(strings.TrimSpace(stderr), "\n") > 1 {
			t.Errorf("sockets -N %s: exit %d, %q; want 2 and %q", c.arg, code, stderr, c.want)
		}
	}
	if code, _, stderr := runCLI("sockets", "--count", "--json"); code != 2 || !strings.Contains(stderr, "--count and --json exclude each other") {
		t.Errorf("--count --json: exit %d, %q", code, stderr)
	}
}

// requireLines fails unless out has, in order, lines matching each pattern.
func requireLines(t *testing.T, out string, patterns ...string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	k := 0
	for _, l := range lines {
		if k < len(patterns) && regexp.MustCompile(patterns[k]).MatchString(l) {
			k++
		}
	}
	if k < len(patterns) {
		t.Errorf("no line matching %q in:\n%s", patterns[k], out)
	}
}
