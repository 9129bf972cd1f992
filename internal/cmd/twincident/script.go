package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/twtrace/twtrace/internal/nsthread"
)

// Ports of the story, and the namespace's settings.
const (
	webPort   = 8080
	apiPort   = 9000
	portRange = "40000 40049" // 50 local ports: loadgen runs out after 50 connections
)

// run starts the incident in new network and UTS namespaces and waits for it.
func run(bin, out string) error {
	twtrace, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	if _, err := os.Stat(twtrace); err != nil {
		return fmt.Errorf("%s: build it first (make build)", bin)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(self, twtrace, out)
	cmd.Env = append(os.Environ(), roleEnv+"=incident")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNET | syscall.CLONE_NEWUTS,
		Pdeathsig:  syscall.SIGKILL,
	}
	if err := cmd.Run(); err != nil {
		if errors.Is(err, syscall.EPERM) {
			return fmt.Errorf("new namespaces need root: %w", err)
		}
		return fmt.Errorf("the incident: %w", err)
	}
	return nil
}

// incident runs in the new namespaces: it sets them up, starts the
// recorder, plays the story and stops the recorder.
func incident(twtrace, out string) error {
	if err := setup(); err != nil {
		return err
	}
	dir, err := linkDir()
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	s := &script{dir: dir}
	defer s.killAll()

	// Before the recording: web serves three requests.
	webv1, err := s.start("web", strconv.Itoa(webPort), "plain")
	if err != nil {
		return err
	}
	if err := s.wait("curl", strconv.Itoa(webPort), "3"); err != nil {
		return err
	}
	time.Sleep(200 * time.Millisecond)

	rec, err := s.record(twtrace, out)
	if err != nil {
		return err
	}
	time.Sleep(500 * time.Millisecond)
	if err := s.wait("curl", strconv.Itoa(webPort), "3"); err != nil {
		return err
	}
	time.Sleep(500 * time.Millisecond)

	// The deploy: web stops, and its successor starts at once.
	s.stop(webv1)
	if err := s.wait("web-restart", strconv.Itoa(webPort)); err != nil {
		return err
	}
	time.Sleep(500 * time.Millisecond)

	// The client that runs out of ports.
	apiSrv, err := s.start("api", strconv.Itoa(apiPort))
	if err != nil {
		return err
	}
	if err := s.wait("loadgen", strconv.Itoa(apiPort), "56"); err != nil {
		return err
	}
	time.Sleep(700 * time.Millisecond)
	s.stop(apiSrv)
	time.Sleep(1200 * time.Millisecond) // a reconciliation round

	if err := rec.Process.Signal(syscall.SIGINT); err != nil {
		return err
	}
	return rec.Wait()
}

// setup brings loopback up, names the host and sets the namespace's
// sysctls. It refuses to run in the namespace it was started from.
func setup() error {
	if err := nsthread.LoopbackUp(); err != nil {
		return err
	}
	if err := unix.Sethostname([]byte("web-1")); err != nil {
		return fmt.Errorf("set the host name of the new UTS namespace: %w", err)
	}
	for name, v := range map[string]string{"ip_local_port_range": portRange, "tcp_tw_reuse": "0"} {
		if err := os.WriteFile("/proc/sys/net/ipv4/"+name, []byte(v), 0o644); err != nil {
			return fmt.Errorf("set %s in the new namespace: %w", name, err)
		}
	}
	return nil
}

// script holds the processes of the story.
type script struct {
	dir  string
	live []*exec.Cmd
}

// command is a role run through its link, so that its comm is its name.
func (s *script) command(role string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.dir, comm(role)), args...)
	cmd.Env = append(os.Environ(), roleEnv+"="+role)
	cmd.Stderr = os.Stderr
	return cmd
}

// start starts a server role and waits until it says it is ready.
func (s *script) start(role string, args ...string) (*exec.Cmd, error) {
	cmd := s.command(role, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s.live = append(s.live, cmd)
	line, _ := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		return nil, fmt.Errorf("%s did not start: %q", role, line)
	}
	return cmd, nil
}

// stop ends a server (SIGTERM: it exits, its sockets close) and waits for it.
func (s *script) stop(cmd *exec.Cmd) {
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
}

// wait runs a role to its end.
func (s *script) wait(role string, args ...string) error {
	cmd := s.command(role, args...)
	cmd.Stdout = os.Stdout
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w", role, err)
	}
	return nil
}

// record starts twtrace record and waits until its programs are attached.
func (s *script) record(twtrace, out string) (*exec.Cmd, error) {
	ready := filepath.Join(s.dir, "ready")
	// Only this namespace's sockets: a test or a lesson elsewhere on the
	// machine may use the same ports meanwhile.
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &st); err != nil {
		return nil, err
	}
	cmd := exec.Command(twtrace, "record", "-o", out, "--force", "--ready-file", ready,
		"--port", strconv.Itoa(webPort), "--port", strconv.Itoa(apiPort), "--netns", strconv.FormatUint(st.Ino, 10))
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s.live = append(s.live, cmd)
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(ready); err == nil {
			return cmd, nil
		}
	}
	return nil, errors.New("twtrace record is not ready after 15 s")
}

func (s *script) killAll() {
	for _, c := range s.live {
		if c.ProcessState == nil {
			c.Process.Kill()
			c.Wait()
		}
	}
}
