package main

// The CLI as a user runs it: the real binary, as root, on loopback, its
// output read through a pipe while it runs, stopped with SIGINT.

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
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/twtrace/twtrace/internal/tracertest"
)

const (
	bindHelperEnv   = "TWTRACE_CLI_TEST_BIND"
	listenHelperEnv = "TWTRACE_CLI_TEST_LISTEN"
	holdHelperEnv   = "TWTRACE_CLI_TEST_HOLD"
)

func TestMain(m *testing.M) {
	if os.Getenv(holdHelperEnv) != "" {
		// Child process: holds the fds it inherited (a listener, as
		// nginx's workers do) until stdin closes.
		fmt.Println("ready")
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}
	if os.Getenv(listenHelperEnv) != "" {
		// Child process: a listener on loopback; prints its port, then
		// holds it until stdin closes.
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		fmt.Println(l.Addr().(*net.TCPAddr).Port)
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}
	if port := os.Getenv(bindHelperEnv); port != "" {
		// Child process: one plain bind() to the port, then exit.
		p, _ := strconv.Atoi(port)
		fd, _ := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
		err := unix.Bind(fd, &unix.SockaddrInet4{Port: p, Addr: [4]byte{127, 0, 0, 1}})
		fmt.Println(err)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// buildBinary builds twtrace with the given build tags (twtracedev: the
// developer build).
func buildBinary(t *testing.T, tags ...string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "twtrace")
	out, err := exec.Command("go", "build", "-tags", strings.Join(tags, ","), "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// lineReader delivers stdout lines as they arrive.
func lineReader(r io.Reader) <-chan string {
	ch := make(chan string, 1024)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			ch <- sc.Text()
		}
		close(ch)
	}()
	return ch
}

// waitLine reads lines until one satisfies match (bounded: 5 s).
func waitLine(t *testing.T, lines <-chan string, seen *[]string, what string, match func(map[string]any) bool) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("output ended before %s; got:\n%s", what, strings.Join(*seen, "\n"))
			}
			*seen = append(*seen, l)
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("not JSON: %q", l)
			}
			if match(m) {
				return
			}
		case <-timeout:
			t.Fatalf("no %s within 5 s while twtrace runs; got:\n%s", what, strings.Join(*seen, "\n"))
		}
	}
}

// TestTraceCLI ends trace with SIGINT, and with SIGHUP (the ssh session
// closed): the same clean end.
func TestTraceCLI(t *testing.T) {
	tracertest.Require(t)
	tracertest.LockBPF(t)
	bin := buildBinary(t)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) { testTraceCLI(t, bin, sig) })
	}
}

func testTraceCLI(t *testing.T, bin string, sig syscall.Signal) {
	port := freePort(t)
	ready := filepath.Join(t.TempDir(), "ready")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "trace", "--json", "--port", strconv.Itoa(port), "--ready-file", ready)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := lineReader(stdout)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("twtrace not ready after 10 s: %s", stderr.String())
		}
	}

	// A server that closes first leaves a TIME_WAIT on the port...
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	l, err := lc.Listen(ctx, "tcp4", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp4", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("client read: %v", err)
	}
	c.Close()
	l.Close()

	// ...and the lines appear while twtrace still runs: the pipe is not block-buffered.
	var seen []string
	waitLine(t, lines, &seen, "the inferred TIME_WAIT", func(m map[string]any) bool {
		return m["kind"] == "timewait" && m["event"] == "enter" && m["sport"] == float64(port)
	})

	// Another process is refused by that TIME_WAIT.
	child := exec.Command(os.Args[0])
	child.Env = append(os.Environ(), bindHelperEnv+"="+strconv.Itoa(port))
	out, err := child.Output()
	if err != nil || !strings.Contains(string(out), "address already in use") {
		t.Fatalf("child bind: %q, %v", out, err)
	}
	waitLine(t, lines, &seen, "the child's EADDRINUSE", func(m map[string]any) bool {
		return m["kind"] == "bind" && m["errno"] == "EADDRINUSE" && m["pid"] == float64(child.Process.Pid) &&
			m["port"] == float64(port) && m["reuseaddr"] == false
	})

	progs := bpfProgIDs(t, cmd.Process.Pid)
	if len(progs) == 0 {
		t.Fatal("the running twtrace holds no BPF program")
	}
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	for range lines {
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("twtrace after %v: %v; stderr: %s", sig, err, stderr.String())
	}
	if stderr.Len() != 0 {
		t.Errorf("unexpected stderr: %s", stderr.String())
	}
	for _, id := range progs {
		if programExists(id) {
			t.Errorf("BPF program %d still loaded after twtrace exited", id)
		}
	}
}

// bpfProgIDs lists the BPF programs a process holds, from its fdinfo.
func bpfProgIDs(t *testing.T, pid int) []int {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fdinfo", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "prog_id:"); ok {
				if id, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
					ids = append(ids, id)
				}
			}
		}
	}
	return ids
}

// programExists polls briefly: the kernel frees programs after an RCU grace period.
func programExists(id int) bool {
	for range 100 {
		p, err := ebpf.NewProgramFromID(ebpf.ProgramID(id))
		if err != nil {
			return false
		}
		p.Close()
		time.Sleep(20 * time.Millisecond)
	}
	return true
}
