package tracer

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/twtrace/twtrace/internal/nsthread"
)

// Classic tracepoints (syscalls:sys_enter_bind, ...) are attached through
// perf_event_open, which needs the event's id from tracefs. Hosts without
// tracefs mounted exist (minimal VMs, some containers), and mounting it for
// the host would change the system. Instead, the attach runs on an OS thread
// that has its own private mount namespace with tracefs mounted in it: the
// mount is invisible to the rest of the system and disappears with the thread.

const tracefsDir = "/sys/kernel/tracing"

// tracefsMounted reports whether the host already has tracefs (or debugfs
// with tracing/) where the loader looks for it.
func tracefsMounted() bool {
	for _, p := range []struct {
		path  string
		magic int64
	}{
		{tracefsDir, unix.TRACEFS_MAGIC},
		{"/sys/kernel/debug/tracing", unix.TRACEFS_MAGIC},
		{"/sys/kernel/debug/tracing", unix.DEBUGFS_MAGIC},
	} {
		var st unix.Statfs_t
		if unix.Statfs(p.path, &st) == nil && int64(st.Type) == p.magic {
			return true
		}
	}
	return false
}

// withTracefs runs fn where tracefs is reachable: directly when the host has
// it, otherwise on a locked thread in a private mount namespace.
func withTracefs(fn func() error) error {
	if tracefsMounted() {
		return fn()
	}
	// The thread is discarded afterwards, and its mount namespace with it.
	return nsthread.Run(func() error {
		if err := privateTracefs(); err != nil {
			return err
		}
		return fn()
	})
}

func privateTracefs() error {
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("tracefs is not mounted and a private mount namespace to mount it in could not be made: %w", err)
	}
	// Keep the mount below from propagating back to the host's namespace.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	if err := unix.Mount("tracefs", tracefsDir, "tracefs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		if errors.Is(err, unix.ENODEV) {
			return fmt.Errorf("this kernel has no tracefs (CONFIG_TRACING): %w", err)
		}
		return fmt.Errorf("mount tracefs in a private namespace: %w", err)
	}
	return nil
}
