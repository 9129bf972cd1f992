package owner

import (
	"strings"
	"testing"

	"github.com/prometheus/procfs"
)

func TestContainerID(t *testing.T) {
	const (
		id    = dockerID
		inner = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
		pod   = "pod8d3b5d4e-6f0a-4b7c-9e2d-1a2b3c4d5e6f"
	)
	for _, c := range []struct{ path, want string }{
		// docker
		{"/system.slice/docker-" + id + ".scope", id},
		{"/docker/" + id, id},
		{"/docker/" + id + "/docker/" + inner, inner}, // docker in docker: the inner one
		{"/system.slice/docker.service", ""},          // the daemon, not a container
		// kubernetes: containerd and CRI-O, systemd and cgroupfs drivers
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-" + strings.ReplaceAll(pod, "-", "_") +
			".slice/cri-containerd-" + id + ".scope", id},
		{"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/crio-" + id + ".scope", id},
		{"/kubepods/burstable/" + pod + "/" + id, id},
		{"/kubepods/besteffort/" + pod, ""}, // the pod's own cgroup holds no process
		{"/system.slice/containerd.service/kubepods-burstable-pod1.slice:cri-containerd:" + id, id},
		{"/machine.slice/crio-conmon-" + id + ".scope", ""},
		// podman, rootful and rootless
		{"/machine.slice/libpod-" + id + ".scope", id},
		{"/machine.slice/libpod-" + id + ".scope/container", id},
		{"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + id + ".scope", id},
		{"/machine.slice/libpod-conmon-" + id + ".scope", ""},
		// containerd without kubernetes (nerdctl): namespace/id
		{"/default/" + id, id},
		// LXC
		{"/lxc.payload.web1", "web1"},
		{"/lxc/web1", "web1"},
		{"/lxc.monitor.web1", ""},
		// not containers
		{"/", ""},
		{"", ""},
		{"/system.slice/sshd.service", ""},
		{"/user.slice/user-1000.slice/session-3.scope", ""},
		{"/user.slice/user-1000.slice/user@1000.service/app.slice/app-gnome-firefox-4121.scope", ""},
		{"/init.scope", ""},
		{"/system.slice/docker-" + id[:63] + ".scope", ""},             // one digit short
		{"/system.slice/docker-" + strings.ToUpper(id) + ".scope", ""}, // the kernel writes lowercase
	} {
		if got := ContainerID(c.path); got != c.want {
			t.Errorf("ContainerID(%q) = %q, want %q", c.path, got, c.want)
		}
	}
}

func TestPickCgroup(t *testing.T) {
	for _, c := range []struct {
		name, file, path, container string
	}{
		{"v2", "0::/system.slice/docker-" + dockerID + ".scope\n",
			"/system.slice/docker-" + dockerID + ".scope", dockerID},
		{"v2 service", "0::/system.slice/sshd.service\n", "/system.slice/sshd.service", ""},
		{"hybrid, container in v1", "12:memory:/docker/" + dockerID + "\n1:name=systemd:/docker/" + dockerID + "\n0::/\n",
			"/docker/" + dockerID, dockerID},
		{"hybrid, v2 in use", "1:name=systemd:/user.slice\n0::/user.slice/user-1000.slice/session-3.scope\n",
			"/user.slice/user-1000.slice/session-3.scope", ""},
		{"v1 only", "4:memory:/kubepods/burstable/pod1/" + dockerID + "\n3:cpu,cpuacct:/kubepods/burstable/pod1/" + dockerID + "\n",
			"/kubepods/burstable/pod1/" + dockerID, dockerID},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeProc(t)
			f.add(proc{pid: 7, comm: "x", uids: "0\t0\t0\t0", cgroup: c.file})
			fs, err := procfs.NewFS(f.root)
			if err != nil {
				t.Fatal(err)
			}
			p, err := fs.Proc(7)
			if err != nil {
				t.Fatal(err)
			}
			cgs, err := p.Cgroups()
			if err != nil {
				t.Fatal(err)
			}
			path, ctr := pickCgroup(cgs)
			if path != c.path || ctr != c.container {
				t.Errorf("pickCgroup = %q, %q; want %q, %q", path, ctr, c.path, c.container)
			}
			r, err := NewResolver(f.root)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := r.Container(7); err != nil || got != c.container {
				t.Errorf("Container(7) = %q, %v; want %q", got, err, c.container)
			}
			if _, err := r.Container(8); err == nil {
				t.Error("Container of a process that does not exist: no error")
			}
		})
	}
}
