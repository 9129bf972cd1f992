package tracer

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// helperSince is the mainline kernel that let tracing programs call each
// helper twtrace's programs use (where it is later than the BPF ring buffer's
// 5.8, or the helper is one a policy can take away).
var helperSince = map[string]string{
	"bpf_get_socket_cookie":    "5.12",
	"bpf_sk_storage_get":       "5.11",
	"bpf_get_current_task_btf": "5.11",
	"bpf_ringbuf_reserve":      "5.8",
	"bpf_ringbuf_submit":       "5.8",
	"bpf_ringbuf_query":        "5.8",
	"bpf_seq_write":            "5.7",
	"bpf_probe_read_kernel":    "5.5",
	"bpf_probe_read_user":      "5.5",
}

// helperRefused finds the helper in the verifier's refusal of a call, in the
// wordings of 4.x to 6.x kernels: "unknown func bpf_get_socket_cookie#46",
// "program of this type cannot use helper bpf_get_socket_cookie#46",
// "invalid func unknown#211".
var helperRefused = regexp.MustCompile(`(?:unknown func|cannot use helper|invalid func) ([a-z0-9_]+)#(\d+)`)

// loadError makes a load failure readable. A helper the kernel refuses, a
// missing privilege or a policy becomes a FeatureError; any other refusal
// by the verifier is cut to its last lines (the full log goes to the debug
// logger). progs says which kind of program it was: "tracing", "tracepoint".
func (t *Tracer) loadError(what, progs string, err error) error {
	var ve *ebpf.VerifierError
	if errors.As(err, &ve) {
		t.log.Debug("verifier log", "program", what, "log", strings.Join(ve.Log, "\n"))
		if fe := helperError(t.host, progs, ve.Log); fe != nil {
			fe.Err = err
			return fe
		}
	}
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return refused(t.host, what, "load "+what, err)
	}
	if ve != nil {
		lines := ve.Log
		if len(lines) > 4 {
			lines = lines[len(lines)-4:]
		}
		return fmt.Errorf("load %s: the verifier refused it: %s", what, strings.Join(lines, "; "))
	}
	return fmt.Errorf("load %s: %w", what, err)
}

// helperError reads the helper a verifier refused from the end of its log.
func helperError(h Host, progs string, log []string) *FeatureError {
	for i := len(log) - 1; i >= 0 && i >= len(log)-6; i-- {
		m := helperRefused.FindStringSubmatch(log[i])
		if m == nil {
			continue
		}
		name := m[1]
		if name == "unknown" {
			name = "helper #" + m[2]
		}
		if h.Lockdown() == "confidentiality" && strings.HasPrefix(name, "bpf_probe_read") {
			return &FeatureError{
				Missing: name,
				Reason:  "kernel lockdown (confidentiality) keeps BPF programs from reading kernel memory (" + name + ")",
				Fix:     "boot the kernel with lockdown=integrity or without lockdown to trace with twtrace",
			}
		}
		since := "a later kernel added it"
		if v, ok := helperSince[name]; ok {
			since = "Linux " + v + " added it"
		}
		return &FeatureError{
			Missing: name,
			Reason:  fmt.Sprintf("this kernel (%s) does not let %s programs call %s (%s)", h.Release, progs, name, since),
			Fix:     upgrade,
		}
	}
	return nil
}

// attachError makes an attach failure readable: a hook this kernel does
// not have, or a policy that forbids attaching, is a FeatureError.
func (t *Tracer) attachError(hook, since string, err error) error {
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return refused(t.host, hook, "attach "+hook, err)
	case errors.Is(err, os.ErrNotExist):
		return &FeatureError{
			Missing: hook,
			Reason:  fmt.Sprintf("this kernel (%s) has no tracepoint %s (Linux %s)", t.host.Release, hook, since),
			Fix:     upgrade,
			Err:     err,
		}
	}
	return fmt.Errorf("attach %s: %w", hook, err)
}
