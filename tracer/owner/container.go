package owner

import "strings"

// ContainerID returns the id of the container whose cgroup path this is, or
// "" when the path belongs to no container (a system service, a user
// session, the root cgroup).
//
// The id is the full one, 64 hex digits, as docker inspect and crictl print
// it: the 12-digit short form is a prefix a caller can cut, while a short id
// cannot be made full again. LXC containers have names, not ids; their name
// is returned.
//
// Recognised, innermost container first (docker in docker yields the inner one):
//
//	/system.slice/docker-<id>.scope                          docker, systemd driver
//	/docker/<id>                                             docker, cgroupfs driver
//	/kubepods.slice/.../cri-containerd-<id>.scope            containerd under kubelet
//	/kubepods/burstable/pod<uid>/<id>                        kubelet, cgroupfs driver
//	/machine.slice/crio-<id>.scope                           CRI-O
//	/machine.slice/libpod-<id>.scope                         podman (also rootless, under user.slice)
//	/default/<id>                                            containerd, nerdctl
//	/lxc.payload.<name>, /lxc/<name>                         LXC
//
// The conmon-… scopes hold podman's and CRI-O's monitor, which runs outside
// the container, so they yield "".
func ContainerID(cgroupPath string) string {
	parts := strings.Split(cgroupPath, "/")
	for i := len(parts) - 1; i >= 0; i-- {
		p := parts[i]
		if strings.Contains(p, "conmon") {
			return ""
		}
		if id := hexID(p); id != "" {
			return id
		}
		if name, ok := strings.CutPrefix(p, "lxc.payload."); ok && name != "" {
			return name
		}
		if i > 0 && parts[i-1] == "lxc" && p != "" {
			return p
		}
	}
	return ""
}

// hexID finds a 64-hex-digit id in one path component: the whole component,
// or its last '-' or ':' separated token once a ".scope" suffix is removed
// (docker-<id>.scope, cri-containerd-<id>.scope, …:cri-containerd:<id>).
func hexID(component string) string {
	c := strings.TrimSuffix(component, ".scope")
	if i := strings.LastIndexAny(c, "-:"); i >= 0 {
		c = c[i+1:]
	}
	if len(c) != 64 {
		return ""
	}
	for i := 0; i < len(c); i++ {
		ch := c[i]
		if !('0' <= ch && ch <= '9' || 'a' <= ch && ch <= 'f') {
			return ""
		}
	}
	return c
}
