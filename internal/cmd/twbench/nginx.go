package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twtrace/twtrace/internal/kcount"
	"github.com/twtrace/twtrace/internal/nsthread"
	"golang.org/x/sys/unix"
)

// The nginx pass: a real server under a real client. nginx (one worker,
// `return 200`) listens on the loopback of a network namespace the harness
// creates for each run, and ab sends it HTTP/1.0 requests (no keep-alive:
// the server closes first, and keeps a TIME_WAIT per 4-tuple the client
// picks, which nearly every new SYN then ends). Unlike twchurn, the table
// sees reuse and tens of thousands of closed sockets.
const nginxPort = 8080

const nginxConf = `worker_processes 1;
daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	server {
		listen 127.0.0.1:%[2]d;
		location / { return 200; }
	}
}
`

// nginxMissing names what the pass needs and this machine lacks; "" when
// nothing is missing.
func nginxMissing() string {
	var missing []string
	for _, bin := range []string{"nginx", "ab"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, bin)
		}
	}
	return strings.Join(missing, " and ")
}

func nginxConfigs(o *options) []config {
	port := strconv.Itoa(nginxPort)
	return keep(o, []config{
		{name: "untraced"},
		floorConfig(floorCount, "count"),
		floorConfig(floorRing, "ring"),
		twtraceConfig(o, "trace --json", "trace", "--json", "--port", port),
		twtraceConfig(o, "tui (headless)", "--headless", "--port", port),
	})
}

// nginxPass runs every configuration under nginx + ab, alternating, as the
// maximum-churn pass does. twtrace filters on the server's port, so what it
// must deliver is counted by a counter of that port in the run's namespace;
// the floors observe every transition of the host, counted by counter.
func nginxPass(ctx context.Context, o *options, counter *counter, out io.Writer, res *results) error {
	if m := nginxMissing(); m != "" {
		fmt.Fprintf(out, "\n== nginx under ab: left out: %s not found (apt-get install nginx apache2-utils)\n", m)
		return nil
	}
	configs := nginxConfigs(o)
	fmt.Fprintf(out, "\n== nginx under ab: ab -n %d -c %d, HTTP/1.0 (the server closes first), one nginx worker (%d rounds)\n",
		o.nginxN, o.nginxC, o.rounds)
	for round := range o.rounds {
		for k := range configs {
			c := configs[(k+round)%len(configs)]
			s, err := nginxRun(ctx, o, c, counter)
			if err != nil {
				return fmt.Errorf("nginx pass: %w", err)
			}
			s.Round = round + 1
			res.Nginx = append(res.Nginx, s)
			fmt.Fprintf(out, "  round %d  %-18s %8.0f req/s  tracer %5.1f%% of a core\n", s.Round, s.Config, s.ConnPerSec, s.TracerPct)
		}
	}
	printMax(out, configs, res.Nginx)
	return nil
}

// nginxRun is one run: a fresh namespace and nginx, the configuration's
// tracer, ab, then everything torn down.
func nginxRun(ctx context.Context, o *options, c config, global *counter) (sample, error) {
	nsfd, ino, err := nsthread.NewNetNS()
	if err != nil {
		return sample{}, fmt.Errorf("network namespace: %w", err)
	}
	defer unix.Close(nsfd)
	dir, err := os.MkdirTemp("", "twbench-nginx-")
	if err != nil {
		return sample{}, err
	}
	defer os.RemoveAll(dir)
	srv, err := startNginx(ctx, nsfd, dir)
	if err != nil {
		return sample{}, err
	}
	defer srv.stop()
	expect := global
	if !c.floor {
		kc, err := kcount.Open(nginxPort, ino)
		if err != nil {
			return sample{}, fmt.Errorf("port counter: %w", err)
		}
		defer kc.Close()
		expect = &counter{kc}
	}
	return runLoad(ctx, o, c, expect, func(ctx context.Context) (*churnResult, error) {
		return runAB(ctx, o, nsfd)
	})
}

type nginxProc struct {
	cmd  *exec.Cmd
	done chan error
}

// startNginx starts nginx in the namespace and returns once it accepts
// connections there.
func startNginx(ctx context.Context, nsfd int, dir string) (*nginxProc, error) {
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(nginxConf, dir, nginxPort)), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, "nginx", "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log"))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	// A process started from a thread in the namespace is born in it.
	if err := nsthread.InNetNS(nsfd, cmd.Start); err != nil {
		return nil, fmt.Errorf("start nginx: %w", err)
	}
	p := &nginxProc{cmd: cmd, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	sa := &unix.SockaddrInet4{Port: nginxPort, Addr: [4]byte{127, 0, 0, 1}}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		err := nsthread.InNetNS(nsfd, func() error {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			return unix.Connect(fd, sa)
		})
		if err == nil {
			return p, nil
		}
		select {
		case werr := <-p.done:
			return nil, fmt.Errorf("nginx exited: %v: %s", werr, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("nginx not accepting on port %d after 10 s: %s", nginxPort, stderr.String())
		}
	}
}

// stop ends nginx (SIGTERM: fast shutdown) and waits for it.
func (p *nginxProc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

var (
	abRPS    = regexp.MustCompile(`Requests per second:\s+([0-9.]+)`)
	abDone   = regexp.MustCompile(`Complete requests:\s+(\d+)`)
	abFailed = regexp.MustCompile(`Failed requests:\s+(\d+)`)
	abNon2xx = regexp.MustCompile(`Non-2xx responses:\s+(\d+)`)
	abTime   = regexp.MustCompile(`Time taken for tests:\s+([0-9.]+)`)
)

// runAB sends the requests from inside the namespace, bounded in count (-n)
// and in time (-s per request, and the whole run by a deadline).
func runAB(ctx context.Context, o *options, nsfd int) (*churnResult, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	url := fmt.Sprintf("http://127.0.0.1:%d/", nginxPort)
	cmd := exec.CommandContext(ctx, "ab", "-q", "-s", "10", "-n", strconv.Itoa(o.nginxN), "-c", strconv.Itoa(o.nginxC), url)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := nsthread.InNetNS(nsfd, cmd.Start); err != nil {
		return nil, fmt.Errorf("start ab: %w", err)
	}
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("ab: %v: %s%s", err, stderr.String(), stdout.String())
	}
	return parseAB(stdout.String(), o.nginxN)
}

// parseAB reads ab's report of a run of n requests: the rate, and the
// failed and non-2xx requests as errors. A run that did not complete all
// of them is an error.
func parseAB(text string, n int) (*churnResult, error) {
	num := func(re *regexp.Regexp) float64 {
		m := re.FindStringSubmatch(text)
		if m == nil {
			return 0
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		return v
	}
	r := &churnResult{ConnPerSec: num(abRPS), Connections: uint64(num(abDone)), Elapsed: num(abTime)}
	if r.ConnPerSec == 0 || r.Connections != uint64(n) {
		return nil, fmt.Errorf("ab completed %d of %d requests: %s", r.Connections, n, text)
	}
	r.ErrorsTotal = uint64(num(abFailed) + num(abNon2xx))
	return r, nil
}
