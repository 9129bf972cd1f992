package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/twtrace/twtrace/tracer"
)

func request(t *testing.T, h http.Handler, method, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec.Code, rec.Body.String()
}

func TestServeEndpoints(t *testing.T) {
	s := newServer(slog.New(slog.DiscardHandler))
	h := s.mux()
	for _, tc := range []struct {
		method, path string
		code         int
		body         string
	}{
		{"GET", "/healthz", 200, "ok\n"},
		{"GET", "/readyz", 503, "not ready: attaching the BPF programs and reading the first snapshot\n"},
		{"GET", "/metrics", 503, "no metrics yet: the BPF programs are being attached\n"},
		{"GET", "/why?port=8080", 404, "/why is off: start twtrace serve with --why to answer it\n"},
		{"POST", "/healthz", 405, ""},
		{"GET", "/nothing", 404, ""},
	} {
		code, body := request(t, h, tc.method, tc.path)
		if code != tc.code || (tc.body != "" && body != tc.body) {
			t.Errorf("%s %s: %d %q, want %d %q", tc.method, tc.path, code, body, tc.code, tc.body)
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "twtrace_test_total", Help: "A test."}))
	s.setMetrics(reg)
	s.setReady()
	if code, body := request(t, h, "GET", "/readyz"); code != 200 || body != "ready\n" {
		t.Errorf("/readyz when ready: %d %q", code, body)
	}
	if code, body := request(t, h, "GET", "/metrics"); code != 200 || !strings.Contains(body, "twtrace_test_total 0") {
		t.Errorf("/metrics: %d %q", code, body)
	}
	s.setNotReady("stopping")
	if code, body := request(t, h, "GET", "/readyz"); code != 503 || body != "not ready: stopping\n" {
		t.Errorf("/readyz when stopping: %d %q", code, body)
	}
	// Bad ports are refused before the probe is asked anything.
	s.setWhy(nil)
	for _, q := range []string{"", "0", "65536", "http", "-1", "8080x"} {
		code, body := request(t, h, "GET", "/why?port="+q)
		if code != 400 || strings.Count(body, "\n") != 1 || !strings.Contains(body, "port") {
			t.Errorf("/why?port=%s: %d %q, want 400 and one sentence about the port", q, code, body)
		}
	}
}

// A failure after the logger exists is logged once, as the CLI would say
// it, and exits with the CLI's code and nothing more on stderr.
func TestServeLogsFailures(t *testing.T) {
	var log bytes.Buffer
	err := logFailure(slog.New(slog.NewJSONHandler(&log, nil)),
		&tracer.FeatureError{Missing: "CAP_BPF", Reason: "twtrace lacks CAP_BPF", Fix: "run twtrace as root"})
	var stderr bytes.Buffer
	if code := exitCode(err, &stderr); code != exitFeature || stderr.Len() != 0 {
		t.Errorf("exit %d, stderr %q; want 3 and nothing", code, stderr.String())
	}
	var line struct{ Level, Msg string }
	if err := json.Unmarshal(log.Bytes(), &line); err != nil || line.Level != "ERROR" ||
		line.Msg != "twtrace lacks CAP_BPF: run twtrace as root" {
		t.Errorf("log %q (%v)", log.String(), err)
	}
	if code := exitCode(logFailure(slog.New(slog.DiscardHandler), errors.New("boom")), &stderr); code != exitFailure {
		t.Errorf("a runtime failure: exit %d", code)
	}
}
