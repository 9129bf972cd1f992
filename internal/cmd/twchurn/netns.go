package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/twtrace/twtrace/internal/nsthread"
)

// parentEnv carries the parent's network namespace inode to the re-executed
// child. The child refuses to touch any sysctl unless its own namespace is a
// different one, so a stray variable can never change the host's settings.
const parentEnv = "TWCHURN_NETNS_PARENT"

// errPrivilege marks a failure for want of privilege: exit code 3.
var errPrivilege = errors.New("missing privilege")

func netnsInode() (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &st); err != nil {
		return 0, fmt.Errorf("stat /proc/self/ns/net: %w", err)
	}
	return st.Ino, nil
}

// runInNetNS re-executes this program in a new network namespace with the
// same arguments and returns its exit code. The namespace dies with the
// child, and with it every socket, TIME_WAIT and sysctl of the run.
func runInNetNS(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	ino, err := netnsInode()
	if err != nil {
		return 0, err
	}
	// The real path, not /proc/self/exe: the child's comm is the file's
	// name, and a tracer filtering on --comm twchurn should see it.
	self, err := os.Executable()
	if err != nil || strings.HasSuffix(self, " (deleted)") {
		self = "/proc/self/exe"
	}
	cmd := exec.Command(self, args...)
	cmd.Env = append(os.Environ(), parentEnv+"="+strconv.FormatUint(ino, 10))
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNET,
		Pdeathsig:  syscall.SIGKILL, // no orphaned load if we are killed
	}
	if err := cmd.Start(); err != nil {
		if errors.Is(err, syscall.EPERM) {
			return 0, fmt.Errorf("%w: --netns creates a network namespace, which needs root (CAP_SYS_ADMIN): %v",
				errPrivilege, err)
		}
		return 0, fmt.Errorf("start in a new network namespace: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			// The child drains and reports, as on its own Ctrl-C.
			_ = cmd.Process.Signal(syscall.SIGTERM)
		case <-exited:
		}
	}()
	err = cmd.Wait()
	close(exited)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if code := ee.ExitCode(); code >= 0 {
			return code, nil
		}
		return 0, fmt.Errorf("child: %w", err)
	}
	return 0, err
}

// setupNetNS runs in the child: it checks that the namespace is new, brings
// loopback up and applies the namespace's sysctls. It reports what it set.
func setupNetNS(cfg *Config, parent string, logw io.Writer) error {
	ino, err := netnsInode()
	if err != nil {
		return err
	}
	if parent == "" || parent == strconv.FormatUint(ino, 10) {
		return fmt.Errorf("%s=%q but this process is not in a new network namespace: refusing to change sysctls",
			parentEnv, parent)
	}
	if err := nsthread.LoopbackUp(); err != nil {
		return err
	}
	sysctls := [][2]string{{"net/ipv4/ip_local_port_range", cfg.PortRange}}
	if cfg.TWReuse >= 0 {
		sysctls = append(sysctls, [2]string{"net/ipv4/tcp_tw_reuse", strconv.Itoa(cfg.TWReuse)})
	}
	sysctls = append(sysctls, [2]string{"net/ipv4/tcp_max_tw_buckets", strconv.Itoa(maxTW(cfg))})
	for _, s := range sysctls {
		if err := os.WriteFile("/proc/sys/"+s[0], []byte(s[1]), 0o644); err != nil {
			return fmt.Errorf("set %s in the new namespace: %w", s[0], err)
		}
	}
	var notes []string
	for _, name := range []string{"ip_local_port_range", "tcp_tw_reuse", "tcp_max_tw_buckets", "tcp_tw_reuse_delay"} {
		if b, err := os.ReadFile("/proc/sys/net/ipv4/" + name); err == nil {
			notes = append(notes, name+"="+strings.Join(strings.Fields(string(b)), " "))
		}
	}
	fmt.Fprintf(logw, "twchurn: in a new network namespace (inode %d): %s\n", ino, strings.Join(notes, ", "))
	return nil
}

// maxTW is the namespace's tcp_max_tw_buckets. By default there is room for
// a TIME_WAIT socket on every 4-tuple the run can use, so that none
// overflows (TCPTimeWaitOverflow): an overflowing close skips TIME_WAIT,
// which is cheaper and would make the load depend on what came before. At
// most a few hundred MB of kernel memory (about 200 bytes each), and only
// while they last: they go with the namespace.
func maxTW(cfg *Config) int {
	if cfg.MaxTW >= 0 {
		return cfg.MaxTW
	}
	lo, hi, _ := parsePortRange(cfg.PortRange) // validated
	return max(131072, cfg.Addrs*cfg.Ports*(hi-lo+1))
}
