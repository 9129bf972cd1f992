package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/twtrace/twtrace/tracer/session"
)

// server is serve's HTTP side: one listener for /metrics, the probes and,
// with --why, /why. It answers from the start; /metrics and /why once the
// session exists, /readyz 200 once the session delivers.
type server struct {
	log      *slog.Logger
	notReady atomic.Pointer[string] // why /readyz says no; nil: ready
	metrics  atomic.Pointer[http.Handler]
	why      atomic.Pointer[whyServer]
}

func newServer(log *slog.Logger) *server {
	s := &server{log: log}
	s.setNotReady("attaching the BPF programs and reading the first snapshot")
	return s
}

func (s *server) setNotReady(why string) { s.notReady.Store(&why) }
func (s *server) setReady()              { s.notReady.Store(nil) }

func (s *server) setMetrics(reg *prometheus.Registry) {
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:            promLogger{s.log},
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             30 * time.Second,
	})
	s.metrics.Store(&h)
}

func (s *server) setWhy(p *session.PortProbe) { s.why.Store(&whyServer{probe: p}) }

// start serves on ln until the server is shut down; a listener that fails
// stops serve (cancel).
func (s *server) start(ln net.Listener, cancel context.CancelFunc) *http.Server {
	srv := &http.Server{
		Handler:           s.mux(),
		ReadHeaderTimeout: 10 * time.Second,
		WriteTimeout:      time.Minute,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("metrics listener failed", "err", err)
			cancel()
		}
	}()
	return srv
}

func (s *server) mux() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, "twtrace serve: /metrics, /healthz, /readyz, /why?port=N (with --why)")
	})
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, "ok")
	})
	m.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if why := s.notReady.Load(); why != nil {
			reply(w, http.StatusServiceUnavailable, "not ready: "+*why)
			return
		}
		reply(w, http.StatusOK, "ready")
	})
	m.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		h := s.metrics.Load()
		if h == nil {
			reply(w, http.StatusServiceUnavailable, "no metrics yet: the BPF programs are being attached")
			return
		}
		(*h).ServeHTTP(w, r)
	})
	m.HandleFunc("GET /why", func(w http.ResponseWriter, r *http.Request) {
		ws := s.why.Load()
		if ws == nil {
			reply(w, http.StatusNotFound, "/why is off: start twtrace serve with --why to answer it")
			return
		}
		ws.serve(w, r)
	})
	return m
}

// reply writes a one-line plain-text answer.
func reply(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	fmt.Fprintln(w, msg)
}

// whyServer answers /why?port=N. One question at a time: a probe reads
// every socket of the namespace, and keeps one BPF iterator.
type whyServer struct {
	mu    sync.Mutex
	probe *session.PortProbe
}

func (ws *whyServer) serve(w http.ResponseWriter, r *http.Request) {
	arg := r.URL.Query().Get("port")
	if arg == "" {
		reply(w, http.StatusBadRequest, "the port is missing: ask /why?port=8080")
		return
	}
	port, err := parsePort(arg)
	if err != nil {
		reply(w, http.StatusBadRequest, err.Error())
		return
	}
	b, err := ws.report(port)
	if err != nil {
		msg, _ := sentence(err)
		reply(w, http.StatusInternalServerError, msg)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// report is why's verdict for a plain bind() to the port, as JSON.
func (ws *whyServer) report(port uint16) ([]byte, error) {
	want, err := (&whyOptions{with: "plain"}).attempt(port)
	if err != nil {
		return nil, err
	}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	r, err := whyOnce(ws.probe, port, want)
	if err != nil {
		return nil, err
	}
	return whyJSON(&r)
}

// promLogger hands promhttp's errors to the log.
type promLogger struct{ log *slog.Logger }

func (l promLogger) Println(v ...any) { l.log.Error(strings.TrimSpace(fmt.Sprintln(v...))) }
