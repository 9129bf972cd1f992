package main

import (
	"io"
	"os"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The deployment files run serve with arguments it accepts: parsed with
// serve's own flags and checked as it checks them before doing anything.
func TestDeployedArgs(t *testing.T) {
	for where, args := range map[string][]string{
		"daemonset.yaml":        daemonSetArgs(t),
		"twtrace-serve.service": unitArgs(t),
	} {
		if len(args) == 0 || args[0] != "serve" {
			t.Errorf("%s: %q does not run serve", where, args)
			continue
		}
		o := &serveOptions{}
		cmd := serveCommand(o, io.Discard)
		if err := cmd.ParseFlags(args[1:]); err != nil {
			t.Errorf("%s: %v", where, err)
			continue
		}
		if err := o.check(); err != nil {
			t.Errorf("%s: %v", where, err)
		}
		if _, err := o.trace.config(io.Discard); err != nil {
			t.Errorf("%s: %v", where, err)
		}
		if cmd.Flags().NArg() != 0 {
			t.Errorf("%s: arguments serve does not take: %q", where, cmd.Flags().Args())
		}
	}
}

// daemonSetArgs are the container's arguments, as the kubelet expands them.
func daemonSetArgs(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("../../deploy/kubernetes/daemonset.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	for {
		var d struct {
			Kind string
			Spec struct {
				Template struct {
					Spec struct {
						Containers []struct{ Args []string }
					}
				}
			}
		}
		if err := dec.Decode(&d); err != nil {
			t.Fatalf("no DaemonSet: %v", err)
		}
		if d.Kind == "DaemonSet" && len(d.Spec.Template.Spec.Containers) > 0 {
			var out []string
			for _, a := range d.Spec.Template.Spec.Containers[0].Args {
				out = append(out, strings.ReplaceAll(a, "$(NODE_IP)", "192.0.2.7"))
			}
			return out
		}
	}
}

// unitArgs are ExecStart's arguments after the binary.
func unitArgs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../../deploy/systemd/twtrace-serve.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "ExecStart="); ok {
			return strings.Fields(v)[1:]
		}
	}
	t.Fatal("no ExecStart")
	return nil
}
