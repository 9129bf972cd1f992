// Package deploy_test checks the deployment files against twtrace itself:
// the Kubernetes manifests and the systemd unit parse, run `twtrace serve`
// (cmd/twtrace's TestDeployedArgs parses their arguments with serve's own
// flags) and give it the capabilities the README names, no more; every
// metric and label the Grafana dashboard queries exists in what the exporter
// serves.
package deploy_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// capabilities are the README's "Security and privileges", which the manifests must grant exactly.
func readmeCapabilities(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Security and privileges\n")
	if !ok {
		t.Fatal("README.md has no Security and privileges section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	caps := regexp.MustCompile(`CAP_[A-Z_]+`).FindAllString(section, -1)
	return sortedSet(caps)
}

func sortedSet(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}

// metricsAddr checks that args run serve and returns their --metrics-addr.
// That serve accepts every flag and value is cmd/twtrace's TestDeployedArgs.
func metricsAddr(t *testing.T, where string, args []string) string {
	t.Helper()
	if len(args) == 0 || args[0] != "serve" {
		t.Fatalf("%s: %q does not run serve", where, args)
	}
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--metrics-addr="); ok {
			return v
		}
		if a == "--metrics-addr" && i+1 < len(args) {
			return args[i+1]
		}
	}
	t.Fatalf("%s: no --metrics-addr in %q", where, args)
	return ""
}

// --- Kubernetes -------------------------------------------------------------

type doc = map[string]any

// dig walks maps and lists: dig(d, "spec", "containers", 0, "name").
func dig(t *testing.T, v any, path ...any) any {
	t.Helper()
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(doc)
			if !ok {
				t.Fatalf("%v: not a map at %q", path, k)
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				t.Fatalf("%v: no item %d", path, k)
			}
			v = l[k]
		}
	}
	return v
}

func strs(v any) []string {
	l, _ := v.([]any)
	var out []string
	for _, x := range l {
		out = append(out, x.(string))
	}
	return out
}

func readManifests(t *testing.T) map[string]doc {
	t.Helper()
	f, err := os.Open("kubernetes/daemonset.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	byKind := map[string]doc{}
	for {
		var d doc
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("daemonset.yaml: %v", err)
		}
		kind, _ := d["kind"].(string)
		if kind == "" || d["apiVersion"] == nil || dig(t, d, "metadata", "name") == nil {
			t.Fatalf("a document without kind, apiVersion or name: %v", d)
		}
		byKind[kind] = d
	}
	return byKind
}

func TestDaemonSet(t *testing.T) {
	docs := readManifests(t)
	for _, kind := range []string{"Namespace", "DaemonSet", "Service", "ServiceMonitor"} {
		if docs[kind] == nil {
			t.Fatalf("no %s in daemonset.yaml", kind)
		}
	}
	ns := dig(t, docs["Namespace"], "metadata", "name")
	for _, kind := range []string{"DaemonSet", "Service", "ServiceMonitor"} {
		if got := dig(t, docs[kind], "metadata", "namespace"); got != ns {
			t.Errorf("%s in namespace %v, want %v", kind, got, ns)
		}
	}
	// Pod Security admission refuses host namespaces below "privileged".
	if got := dig(t, docs["Namespace"], "metadata", "labels", "pod-security.kubernetes.io/enforce"); got != "privileged" {
		t.Errorf("namespace's pod security level %v", got)
	}

	ds := docs["DaemonSet"]
	if ds["apiVersion"] != "apps/v1" {
		t.Errorf("DaemonSet apiVersion %v", ds["apiVersion"])
	}
	podLabels := dig(t, ds, "spec", "template", "metadata", "labels").(doc)
	if !subset(dig(t, ds, "spec", "selector", "matchLabels").(doc), podLabels) {
		t.Error("the DaemonSet's selector does not select its pods")
	}
	pod := dig(t, ds, "spec", "template", "spec")
	if dig(t, pod, "hostNetwork") != true || dig(t, pod, "hostPID") != true {
		t.Error("the pod needs the host's network and PID namespaces")
	}
	if dig(t, pod, "dnsPolicy") != "ClusterFirstWithHostNet" {
		t.Error("a hostNetwork pod needs dnsPolicy ClusterFirstWithHostNet")
	}
	c := dig(t, pod, "containers", 0)
	addr := metricsAddr(t, "daemonset.yaml", strs(dig(t, c, "args")))
	port := addr[strings.LastIndexByte(addr, ':')+1:]
	var portName string
	for _, p := range dig(t, c, "ports").([]any) {
		if strings.TrimSpace(yamlString(p.(doc)["containerPort"])) == port {
			portName = p.(doc)["name"].(string)
		}
	}
	if portName == "" {
		t.Fatalf("no container port %s (--metrics-addr %s)", port, addr)
	}
	ann := dig(t, ds, "spec", "template", "metadata", "annotations").(doc)
	if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != port || ann["prometheus.io/path"] != "/metrics" {
		t.Errorf("scrape annotations %v, want scrape true, port %s, path /metrics", ann, port)
	}
	for probe, path := range map[string]string{"readinessProbe": "/readyz", "livenessProbe": "/healthz"} {
		get := dig(t, c, probe, "httpGet").(doc)
		if get["path"] != path || (get["port"] != portName && yamlString(get["port"]) != port) {
			t.Errorf("%s %v, want %s on the metrics port", probe, get, path)
		}
	}
	for _, kind := range []string{"requests", "limits"} {
		r, _ := dig(t, c, "resources", kind).(doc)
		if r["cpu"] == nil || r["memory"] == nil {
			t.Errorf("resources.%s %v, want cpu and memory", kind, r)
		}
	}
	sc := dig(t, c, "securityContext").(doc)
	if sc["privileged"] == true || sc["allowPrivilegeEscalation"] != false {
		t.Errorf("securityContext %v: not privileged, no privilege escalation", sc)
	}
	if drop := strs(dig(t, sc, "capabilities", "drop")); !slices.Equal(drop, []string{"ALL"}) {
		t.Errorf("capabilities dropped: %v, want ALL", drop)
	}
	var add []string
	for _, cp := range strs(dig(t, sc, "capabilities", "add")) {
		add = append(add, "CAP_"+cp)
	}
	if want := readmeCapabilities(t); !slices.Equal(sortedSet(add), want) {
		t.Errorf("capabilities added: %v, the README names %v", sortedSet(add), want)
	}
	mounts := map[string]string{} // mount path → volume
	for _, m := range dig(t, c, "volumeMounts").([]any) {
		m := m.(doc)
		if m["readOnly"] != true {
			t.Errorf("volume %v mounted writable", m["name"])
		}
		mounts[m["mountPath"].(string)] = m["name"].(string)
	}
	volumes := map[string]string{} // volume → host path
	for _, v := range dig(t, pod, "volumes").([]any) {
		v := v.(doc)
		if hp, ok := v["hostPath"].(doc); ok {
			volumes[v["name"].(string)] = hp["path"].(string)
		}
	}
	for _, path := range []string{"/sys/kernel/btf", "/sys/kernel/tracing"} {
		if name, ok := mounts[path]; !ok || volumes[name] != path {
			t.Errorf("%s is not the host's, mounted read-only (mount %q, host path %q)", path, name, volumes[name])
		}
	}

	svc := docs["Service"]
	if !subset(dig(t, svc, "spec", "selector").(doc), podLabels) {
		t.Error("the Service does not select the pods")
	}
	sp := dig(t, svc, "spec", "ports", 0).(doc)
	if yamlString(sp["port"]) != port || sp["targetPort"] != portName {
		t.Errorf("Service port %v, want %s to %s", sp, port, portName)
	}
	sm := docs["ServiceMonitor"]
	if sm["apiVersion"] != "monitoring.coreos.com/v1" {
		t.Errorf("ServiceMonitor apiVersion %v", sm["apiVersion"])
	}
	if !subset(dig(t, sm, "spec", "selector", "matchLabels").(doc), dig(t, svc, "metadata", "labels").(doc)) {
		t.Error("the ServiceMonitor does not select the Service")
	}
	if !slices.Contains(strs(dig(t, sm, "spec", "namespaceSelector", "matchNames")), ns.(string)) {
		t.Error("the ServiceMonitor does not look in the namespace")
	}
	ep := dig(t, sm, "spec", "endpoints", 0).(doc)
	if ep["port"] != sp["name"] || ep["path"] != "/metrics" {
		t.Errorf("ServiceMonitor endpoint %v, want port %v, path /metrics", ep, sp["name"])
	}
}

func subset(a, b doc) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return len(a) > 0
}

func yamlString(v any) string {
	b, _ := yaml.Marshal(v)
	return strings.TrimSpace(string(b))
}

// --- systemd ----------------------------------------------------------------

// readUnit parses a unit file: section → key → values (keys may repeat).
func readUnit(t *testing.T, path string) map[string]map[string][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string][]string{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			out[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s: not key=value in a section: %q", path, line)
			}
			out[section][k] = append(out[section][k], v)
		}
	}
	return out
}

func TestSystemdUnit(t *testing.T) {
	u := readUnit(t, "systemd/twtrace-serve.service")
	for _, s := range []string{"Unit", "Service", "Install"} {
		if u[s] == nil {
			t.Fatalf("no [%s]", s)
		}
	}
	svc := u["Service"]
	one := func(k string) string {
		if len(svc[k]) != 1 {
			t.Errorf("%s given %d times", k, len(svc[k]))
			return ""
		}
		return svc[k][0]
	}
	exec := strings.Fields(one("ExecStart"))
	if len(exec) < 2 || !filepath.IsAbs(exec[0]) || filepath.Base(exec[0]) != "twtrace" {
		t.Fatalf("ExecStart %q", exec)
	}
	metricsAddr(t, "twtrace-serve.service", exec[1:])
	caps := readmeCapabilities(t)
	for _, k := range []string{"CapabilityBoundingSet", "AmbientCapabilities"} {
		if got := sortedSet(strings.Fields(one(k))); !slices.Equal(got, caps) {
			t.Errorf("%s %v, the README names %v", k, got, caps)
		}
	}
	for k, want := range map[string]string{
		"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
		"SystemCallArchitectures": "native", "DynamicUser": "yes",
	} {
		if got := one(k); got != want {
			t.Errorf("%s=%s, want %s", k, got, want)
		}
	}
	if got := sortedSet(strings.Fields(one("RestrictAddressFamilies"))); !slices.Equal(got, []string{"AF_INET", "AF_INET6", "AF_NETLINK", "AF_UNIX"}) {
		t.Errorf("RestrictAddressFamilies %v", got)
	}
	// The CLI's exit codes for bad usage and a missing privilege: a restart cannot help.
	if got := strings.Fields(one("RestartPreventExitStatus")); !slices.Equal(got, []string{"2", "3"}) {
		t.Errorf("RestartPreventExitStatus %v", got)
	}
	// The system call filter lets through what serve uses.
	allowed := strings.Fields(one("SystemCallFilter"))
	for _, need := range []string{"@system-service", "@mount", "bpf", "perf_event_open", "membarrier", "pidfd_getfd"} {
		if !slices.Contains(allowed, need) {
			t.Errorf("SystemCallFilter %v lacks %s, which serve needs", allowed, need)
		}
	}
	if len(u["Install"]["WantedBy"]) == 0 {
		t.Error("no WantedBy")
	}
}
