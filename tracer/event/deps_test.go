package event

import (
	"os/exec"
	"strings"
	"testing"
)

// The stages that replay, report or show events must build without the
// code that attaches to the kernel (docs/architecture.md).
func TestNoBPFBelowTheTracer(t *testing.T) {
	pkgs := []string{"../event", "../table", "../advice", "../jsonl", "../capture", "../stream", "../text", "../metrics", "../../tui"}
	out, err := exec.Command("go", append([]string{"list", "-deps", "-f", "{{.ImportPath}}"}, pkgs...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, p := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(p, "github.com/cilium/ebpf") || p == "github.com/twtrace/twtrace/tracer" ||
			p == "github.com/twtrace/twtrace/tracer/session" {
			t.Errorf("a package of %v depends on %s", pkgs, p)
		}
	}
}
