package owner

import (
	"fmt"
	"os/user"
	"strconv"
	"strings"

	"github.com/prometheus/procfs"
)

// Process describes a process that holds a socket.
type Process struct {
	PID     uint32
	Comm    string // the kernel's task name, at most 15 bytes
	Cmdline string // arguments joined by spaces; "" for kernel threads
	UID     uint32 // effective uid, the one the kernel checks (ps's USER)
	User    string // name of UID, or UID in decimal when it has none
	// Cgroup is the process's cgroup path: the cgroup v2 one, or on a
	// v1-only host the name=systemd hierarchy's (else the first listed).
	Cgroup string
	// Container is the full container id (see ContainerID), "" when none.
	Container string
}

// readProcess reads the details of pid from fs. userName maps a uid to a
// name; the caller caches it.
func readProcess(fs procfs.FS, pid uint32, userName func(uint32) string) (Process, error) {
	p, err := fs.Proc(int(pid))
	if err != nil {
		return Process{}, fmt.Errorf("process %d: %w", pid, err)
	}
	comm, err := p.Comm()
	if err != nil {
		return Process{}, fmt.Errorf("process %d comm: %w", pid, err)
	}
	args, err := p.CmdLine()
	if err != nil {
		return Process{}, fmt.Errorf("process %d cmdline: %w", pid, err)
	}
	st, err := p.NewStatus()
	if err != nil {
		return Process{}, fmt.Errorf("process %d status: %w", pid, err)
	}
	uid := uint32(st.UIDs[1])
	out := Process{
		PID:     pid,
		Comm:    comm,
		Cmdline: strings.Join(args, " "),
		UID:     uid,
		User:    userName(uid),
	}
	// The cgroup is extra: a process without a readable cgroup file
	// (an old kernel, a restricted /proc) still has an owner to report.
	if cgs, err := p.Cgroups(); err == nil {
		out.Cgroup, out.Container = pickCgroup(cgs)
	}
	return out, nil
}

// pickCgroup chooses the path to show and the container id. On a hybrid
// host the v2 path is often "/" while a v1 hierarchy names the container,
// so every hierarchy is searched for the id.
func pickCgroup(cgs []procfs.Cgroup) (path, container string) {
	var v2, systemd, first string
	for _, cg := range cgs {
		switch {
		case cg.HierarchyID == 0:
			v2 = cg.Path
		case len(cg.Controllers) == 1 && cg.Controllers[0] == "name=systemd":
			systemd = cg.Path
		case first == "":
			first = cg.Path
		}
		if container == "" {
			container = ContainerID(cg.Path)
		}
	}
	switch {
	case v2 != "" && (v2 != "/" || systemd == ""):
		path = v2
	case systemd != "":
		path = systemd
	default:
		path = first
	}
	return path, container
}

// lookupUser names uid from the host's user database, or returns it in
// decimal, as ps does for a uid without a name (common for container users).
func lookupUser(uid uint32) string {
	s := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(s); err == nil {
		return u.Username
	}
	return s
}
