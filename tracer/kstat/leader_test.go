package kstat

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/twtrace/twtrace/internal/tracertest"
)

// leaderEnv makes the test binary a child whose main thread sits in a
// private network namespace, as it does in a process where a goroutine
// exited while locked to the main thread after a setns.
const leaderEnv = "TWTRACE_KSTAT_LEADER_NETNS"

// Locking in init keeps TestMain on the main thread, so that it can move
// the main thread alone; and it starts the runtime's template thread first,
// from which later threads are cloned in the original namespace.
func init() { runtime.LockOSThread() }

func TestMain(m *testing.M) {
	if os.Getenv(leaderEnv) == "1" {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			fmt.Fprintln(os.Stderr, "unshare:", err)
			os.Exit(3)
		}
	}
	os.Exit(m.Run())
}

// TestReaderFollowsThreadNotLeader: the counters a Reader returns are those
// of the calling thread's namespace even when the thread group leader, which
// /proc/net follows, is elsewhere.
func TestReaderFollowsThreadNotLeader(t *testing.T) {
	tracertest.Require(t)
	if os.Getenv(leaderEnv) != "1" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestReaderFollowsThreadNotLeader$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), leaderEnv+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child test: %v\n%s", err, out)
		}
		return
	}

	// This goroutine's thread is in the original namespace; a listener
	// makes inuse at least 1 there, while the leader's new namespace has none.
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// Reading /proc/net itself shows the setup bites: it is the leader's
	// empty namespace.
	leader, err := newReader("/proc", "/proc")
	if err != nil {
		t.Fatal(err)
	}
	lc, err := leader.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if lc.InUse != 0 {
		t.Fatalf("/proc/net shows %d sockets in use; the leader is not in a new namespace", lc.InUse)
	}

	r, err := NewReader("/proc")
	if err != nil {
		t.Fatal(err)
	}
	c, err := r.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if c.InUse < 1 {
		t.Errorf("Reader sees %d sockets in use, want the caller's listener: it read the leader's namespace", c.InUse)
	}
}
