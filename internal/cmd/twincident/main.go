// Command twincident re-records the sample capture of testdata/: a real run
// of a scripted incident, recorded by the real `twtrace record`, so that a
// newcomer sees twtrace work without root (make testdata; needs root).
//
// Everything happens in a private network namespace (and UTS namespace,
// whose host name is web-1) that dies with the run: its loopback, its
// sysctls (a narrow ip_local_port_range, tcp_tw_reuse off) and its sockets.
// The story, about six seconds long:
//
//  1. web, a server without SO_REUSEADDR on 0.0.0.0:8080, closes its
//     connections first: each leaves a TIME_WAIT on the port. Three
//     requests are served before the recording starts (the capture's
//     snapshot has the listener and those TIME_WAITs), three more after.
//  2. web is restarted too fast: the new process's bind() is refused with
//     EADDRINUSE, twice without SO_REUSEADDR and once with it (still
//     refused: the TIME_WAITs were left by a socket without it).
//  3. loadgen opens a connection per request to api on 127.0.0.1:9000 and
//     closes it first: each leaves a TIME_WAIT that holds a local port
//     towards api, until the 50 ports of ip_local_port_range are taken and
//     connect() is refused with EADDRNOTAVAIL.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// roleEnv names the part a re-executed copy of this program plays.
const roleEnv = "TWINCIDENT_ROLE"

func main() {
	if role := os.Getenv(roleEnv); role != "" {
		if err := play(role, os.Args[1:]); err != nil {
			fmt.Fprintf(os.Stderr, "twincident %s: %v\n", role, err)
			os.Exit(1)
		}
		return
	}
	bin := flag.String("twtrace", "bin/twtrace", "the twtrace binary that records")
	out := flag.String("o", "testdata/incident.jsonl.zst", "the capture to write (replaced)")
	flag.Parse()
	abs, err := filepath.Abs(*out)
	if err == nil {
		err = run(*bin, abs)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "twincident: %v\n", err)
		os.Exit(1)
	}
}

// play runs one role in a re-executed copy.
func play(role string, args []string) error {
	num := func(i int) int {
		n, _ := strconv.Atoi(args[i])
		return n
	}
	switch role {
	case "incident":
		return incident(args[0], args[1])
	case "web":
		return web(num(0), args[1] == "reuseaddr")
	case "web-restart":
		return webRestart(num(0))
	case "curl":
		return curl(num(0), num(1))
	case "api":
		return api(num(0))
	case "loadgen":
		return loadgen(num(0), num(1))
	}
	return fmt.Errorf("unknown role %q", role)
}

// names are the task names the roles run under: a copy of this program is
// executed through a link of that name, which becomes its comm.
var names = []string{"web", "curl", "api", "loadgen"}

// linkDir makes the links, in a fresh directory only root can enter.
func linkDir() (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "twincident-")
	if err != nil {
		return "", err
	}
	for _, n := range names {
		if err := os.Symlink(self, filepath.Join(dir, n)); err != nil {
			os.RemoveAll(dir)
			return "", err
		}
	}
	return dir, nil
}

// comm is the name a role runs under.
func comm(role string) string {
	name, _, _ := strings.Cut(role, "-")
	return name
}
