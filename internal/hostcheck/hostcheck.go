// Package hostcheck helps tests prove that something left the host as it
// found it: the sysctls it may have touched, the named network namespaces
// (`ip netns list`), the host's TCP sockets on some ports (sock_diag), and
// no process or namespace left behind.
package hostcheck

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/twtrace/twtrace/tracer/sockdiag"
)

// State is a snapshot of the host.
type State struct {
	Sysctls map[string]string // by /proc/sys path below net/, e.g. "ipv4/tcp_tw_reuse"
	NetNS   []string          // the names in /run/netns, which `ip netns list` shows
	Sockets []string          // TCP sockets on the watched ports: "STATE src dst"
}

// Take reads the host: the sysctls under /proc/sys/net named, and the TCP
// sockets of the caller's network namespace that watch selects by their
// local and remote ports.
func Take(sysctls []string, watch func(local, remote uint16) bool) (State, error) {
	s := State{Sysctls: map[string]string{}}
	for _, name := range sysctls {
		b, err := os.ReadFile("/proc/sys/net/" + name)
		if err != nil {
			return s, err
		}
		s.Sysctls[name] = strings.Join(strings.Fields(string(b)), " ")
	}
	ents, err := os.ReadDir("/run/netns")
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return s, err
	}
	for _, e := range ents {
		s.NetNS = append(s.NetNS, e.Name())
	}
	c, err := sockdiag.Dial(-1)
	if err != nil {
		return s, err
	}
	defer c.Close()
	mask := sockdiag.AllStates | sockdiag.StateMask(sockdiag.StateBoundInactive)
	err = c.Dump(unix.AF_UNSPEC, mask, func(k *sockdiag.Socket) error {
		if watch(k.Src.Port(), k.Dst.Port()) {
			s.Sockets = append(s.Sockets, fmt.Sprintf("%d %s %s", k.State, k.Src, k.Dst))
		}
		return nil
	})
	if err != nil && !errors.Is(err, sockdiag.ErrInterrupted) {
		return s, err
	}
	slices.Sort(s.Sockets)
	return s, nil
}

// Diff says how after differs from s, one line each; nil if not at all.
func (s State) Diff(after State) []string {
	var out []string
	for k, v := range s.Sysctls {
		if after.Sysctls[k] != v {
			out = append(out, fmt.Sprintf("net.%s changed from %q to %q", strings.ReplaceAll(k, "/", "."), v, after.Sysctls[k]))
		}
	}
	if !slices.Equal(s.NetNS, after.NetNS) {
		out = append(out, fmt.Sprintf("ip netns list changed from %v to %v", s.NetNS, after.NetNS))
	}
	for _, k := range after.Sockets {
		if !slices.Contains(s.Sockets, k) {
			out = append(out, "new host socket: "+k)
		}
	}
	return out
}

// Alive returns those of pids that still run (zombies count as gone: they
// hold no socket and no namespace).
func Alive(pids []int) []int {
	var out []int
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// The state follows the command name, which is in parentheses.
		if i := strings.LastIndexByte(string(b), ')'); i > 0 && i+2 < len(b) && b[i+2] == 'Z' {
			continue
		}
		out = append(out, pid)
	}
	return out
}

// Children returns the pids whose parent is pid.
func Children(pid int) []int {
	var out []int
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			n, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			out = append(out, n)
		}
	}
	return out
}

// NetNSGone waits up to a second for NetNSHolders to find nothing, and
// returns what it found last: a thread that ran in a namespace ends a
// moment after its goroutine reported back.
func NetNSGone(inode uint32, pids []int) []string {
	deadline := time.Now().Add(time.Second)
	for {
		h := NetNSHolders(inode, pids)
		if len(h) == 0 || time.Now().After(deadline) {
			return h
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// NetNSHolders returns what of the processes pids keeps the network
// namespace inode alive: their threads inside it ("pid/tid") and their fds
// open on it ("pid fd N"). Only the processes that made a namespace can
// hold it, and looking at them alone keeps another namespace that reused
// the inode number since out of the answer. A namespace nothing holds (and
// no bind mount, which /run/netns would show) is gone.
func NetNSHolders(inode uint32, pids []int) []string {
	var out []string
	want := fmt.Sprintf("net:[%d]", inode)
	for _, pid := range pids {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/[0-9]*/ns/net", pid))
		for _, p := range tasks {
			var st unix.Stat_t
			if unix.Stat(p, &st) == nil && uint32(st.Ino) == inode {
				out = append(out, fmt.Sprintf("%d/%s", pid, strings.Split(p, "/")[4]))
			}
		}
		fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
		for _, p := range fds {
			if l, err := os.Readlink(p); err == nil && l == want {
				out = append(out, fmt.Sprintf("%d fd %s", pid, filepath.Base(p)))
			}
		}
	}
	return out
}
