package nsthread

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// NewNetNS creates a network namespace with loopback up and returns an fd
// of it (O_CLOEXEC) and its inode. The namespace is anonymous: no name in
// /run/netns (`ip netns list` does not show it), and it lives exactly as
// long as this fd or a process or socket inside it, so it goes with the
// caller even when the caller is killed. Creating one needs CAP_SYS_ADMIN.
func NewNetNS() (fd int, inode uint32, err error) {
	err = Run(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("unshare(CLONE_NEWNET): %w", err)
		}
		f, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open the new network namespace: %w", err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(f, &st); err != nil {
			unix.Close(f)
			return fmt.Errorf("stat the new network namespace: %w", err)
		}
		if err := LoopbackUp(); err != nil {
			unix.Close(f)
			return err
		}
		fd, inode = f, uint32(st.Ino)
		return nil
	})
	return fd, inode, err
}

// ThreadNetNS is the inode of the calling thread's network namespace.
func ThreadNetNS() (uint32, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		return 0, fmt.Errorf("stat /proc/thread-self/ns/net: %w", err)
	}
	return uint32(st.Ino), nil
}

// LoopbackUp sets IFF_UP on lo in the calling thread's network namespace:
// a new namespace starts with it down.
func LoopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket for ioctl: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("ifreq lo: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("get lo flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("set lo up: %w", err)
	}
	return nil
}
