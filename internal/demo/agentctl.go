package demo

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twtrace/twtrace/internal/nsthread"
)

// launcher is a thread inside the lesson's namespace that starts the
// lesson's agents and outlives them: a child's parent death signal fires
// when the thread that forked it ends, so the agents are forked from this
// one, which ends (and kills any agent left) when the lesson does, and
// with twtrace however twtrace ends.
type launcher struct {
	reqs chan func()
	done chan struct{}
}

func startLauncher(nsFD int, inode uint32) (*launcher, error) {
	l := &launcher{reqs: make(chan func()), done: make(chan struct{})}
	ready := make(chan error, 1)
	go func() {
		defer close(l.done)
		err := nsthread.InNetNS(nsFD, func() error {
			if ino, err := nsthread.ThreadNetNS(); err != nil || ino != inode {
				return fmt.Errorf("the launcher thread is not in the lesson's namespace (%d, want %d): %v", ino, inode, err)
			}
			ready <- nil
			for fn := range l.reqs {
				fn()
			}
			return nil
		})
		if err != nil {
			ready <- err
		}
	}()
	if err := <-ready; err != nil {
		return nil, err
	}
	return l, nil
}

// do runs fn on the launcher thread.
func (l *launcher) do(fn func()) {
	done := make(chan struct{})
	l.reqs <- func() { fn(); close(done) }
	<-done
}

// stop ends the thread.
func (l *launcher) stop() {
	close(l.reqs)
	<-l.done
}

// agent is the lesson's handle on one of its processes.
type agent struct {
	Role    string
	PID     int
	cmd     *exec.Cmd
	in      io.WriteCloser
	replies chan string
	stderr  *tailBuffer
	exited  chan struct{}
	waitErr error
}

// callTimeout bounds a command to an agent: they all finish in
// milliseconds, except a churn of many connections.
const callTimeout = 20 * time.Second

// startAgent starts an agent with a role, as uid (0: root, like twtrace).
func (e *env) startAgent(role string, uid int) (*agent, error) {
	self, err := os.Executable()
	if err != nil || strings.HasSuffix(self, " (deleted)") {
		self = "/proc/self/exe"
	}
	a := &agent{Role: role, replies: make(chan string, 4), stderr: &tailBuffer{max: 4096}, exited: make(chan struct{})}
	cmd := exec.Command(self)
	cmd.Args = []string{"twtrace-demo", e.lesson.Name, role} // what ps and why show
	cmd.Env = agentEnv(role, e.netns, uid)
	cmd.Stderr = a.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if a.in, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	e.launch.do(func() { err = cmd.Start() })
	if err != nil {
		return nil, fmt.Errorf("start the lesson's %s: %w", role, err)
	}
	a.cmd, a.PID = cmd, cmd.Process.Pid
	e.agents = append(e.agents, a)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			a.replies <- sc.Text()
		}
		a.waitErr = cmd.Wait()
		close(a.exited)
	}()
	return a, nil
}

// agentEnv is the environment of an agent: the caller's, without any
// variable of an agent's, and the agent's own.
func agentEnv(role string, netns uint32, uid int) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TWTRACE_DEMO_") {
			env = append(env, kv)
		}
	}
	env = append(env, AgentEnv+"="+role, netnsEnv+"="+strconv.FormatUint(uint64(netns), 10),
		parentEnv+"="+strconv.Itoa(os.Getpid()))
	if uid != 0 {
		env = append(env, uidEnv+"="+strconv.Itoa(uid))
	}
	return env
}

// call sends a command and returns the answer's words after "ok"; an
// answer "err ..." is a *refusal.
func (a *agent) call(ctx context.Context, format string, args ...any) ([]string, error) {
	line := fmt.Sprintf(format, args...)
	if _, err := fmt.Fprintln(a.in, line); err != nil {
		return nil, a.gone(err)
	}
	t := time.NewTimer(callTimeout)
	defer t.Stop()
	select {
	case r := <-a.replies:
		f := strings.Fields(r)
		switch {
		case len(f) > 0 && f[0] == "ok":
			return f[1:], nil
		case len(f) >= 3 && f[0] == "err" && f[1] != "usage":
			return nil, &refusal{Call: f[1], Errno: f[2], Rest: f[3:]}
		}
		return nil, fmt.Errorf("the lesson's %s answered %q to %q", a.Role, r, line)
	case <-a.exited:
		return nil, a.gone(nil)
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.C:
		return nil, fmt.Errorf("the lesson's %s (pid %d) did not answer %q within %v", a.Role, a.PID, line, callTimeout)
	}
}

func (a *agent) gone(err error) error {
	select {
	case <-a.exited:
		return fmt.Errorf("the lesson's %s (pid %d) ended: %v %s", a.Role, a.PID, a.waitErr, strings.TrimSpace(a.stderr.String()))
	case <-time.After(time.Second):
		return fmt.Errorf("the lesson's %s (pid %d): %w", a.Role, a.PID, err)
	}
}

// refusal is a system call the kernel refused an agent.
type refusal struct {
	Call  string // bind, listen, connect, ...
	Errno string // EADDRINUSE, ...
	Rest  []string
}

func (r *refusal) Error() string { return r.Call + "() failed with " + r.Errno }

// refused returns the refusal in err, if it is one.
func refused(err error) (*refusal, bool) {
	var r *refusal
	ok := errors.As(err, &r)
	return r, ok
}

// exit asks the agent to end and waits; it is killed if it does not.
func (a *agent) exit() error {
	fmt.Fprintln(a.in, "exit")
	a.in.Close()
	select {
	case <-a.exited:
		return nil
	case <-time.After(2 * time.Second):
		_ = a.cmd.Process.Kill()
		<-a.exited
		return fmt.Errorf("the lesson's %s (pid %d) did not exit when asked: killed", a.Role, a.PID)
	}
}

// kill ends the agent at once, if it still runs, and waits for it.
func (a *agent) kill() {
	select {
	case <-a.exited:
		return
	default:
	}
	a.in.Close()
	_ = a.cmd.Process.Kill()
	<-a.exited
}

// tailBuffer keeps the last bytes written to it: an agent's stderr, for
// the message when it fails.
type tailBuffer struct {
	mu  sync.Mutex
	b   []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
