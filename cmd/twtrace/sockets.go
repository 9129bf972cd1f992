package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/twtrace/twtrace/tracer/jsonl"
	"github.com/twtrace/twtrace/tracer/session"
	"github.com/twtrace/twtrace/tracer/stream"
	"github.com/twtrace/twtrace/tracer/table"
)

type socketsOptions struct {
	filters filterFlags
	json    bool
	count   bool
	netns   string
}

func newSocketsCmd(stdout, stderr io.Writer) *cobra.Command {
	o := &socketsOptions{}
	cmd := &cobra.Command{
		Use:   "sockets",
		Short: "List TCP sockets with their owners, queues and timers (like ss -tanpoe)",
		Long: `List the TCP sockets of a network namespace from the kernel's own table
(sock_diag), every state including TIME_WAIT with the time left on its timer,
the queues and the timer ss -o shows, and every process that holds each
socket with its fds (found through /proc, as ss -p does: run as root to see
every process). --count sums them up by local port and state instead.`,
		Example: `  twtrace sockets --port 8080
  twtrace sockets --state TIME_WAIT --json
  twtrace sockets --count
  twtrace sockets -N blue --port 80`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSockets(o, stdout, stderr)
		},
	}
	o.filters.registerSnapshot(cmd.Flags())
	cmd.Flags().BoolVar(&o.json, "json", false, "write one JSON object per socket (schema: docs/jsonl.md)")
	cmd.Flags().BoolVar(&o.count, "count", false, "count sockets by local port and state (the clients' ports in one row) instead of listing them")
	cmd.Flags().StringVarP(&o.netns, "net", "N", "", "list this network namespace: a name from `ip netns` or a path such as /proc/PID/ns/net")
	return cmd
}

func runSockets(o *socketsOptions, stdout, stderr io.Writer) error {
	flt, err := o.filters.filter()
	if err != nil {
		return err
	}
	if o.count && o.json {
		return usagef("--count and --json exclude each other: --json lists every socket, for jq to count")
	}
	nsFD, err := openNetNSFlag(o.netns)
	if err != nil {
		return err
	}
	if nsFD >= 0 {
		defer unix.Close(nsFD)
	}
	l, err := session.Snapshot("/proc", nsFD, &flt)
	if err != nil {
		return err
	}
	if st := l.Table.Stats(); st.Untracked > 0 {
		fmt.Fprintf(stderr, "twtrace: %s not listed: a listing holds at most %d\n",
			plural(st.Untracked, "more socket", "more sockets"), st.Sockets)
	}
	if !o.count {
		if err := session.ReadReuse(l.Table, nsFD); err != nil {
			fmt.Fprintf(stderr, "twtrace: REUSE unknown (?): %v\n", err)
		}
	}
	now := time.Now()
	socks := l.Sockets(table.Query{Ports: flt.Ports, States: flt.States, PID: flt.PID}, now)
	switch {
	case o.count:
		return stream.WriteCounts(stdout, socks)
	case !o.json:
		return stream.WriteSockets(stdout, socks, now, colorful(stdout))
	}
	var b []byte
	for i := range socks {
		b = jsonl.AppendSocket(b, &socks[i], now)
	}
	_, err = stdout.Write(b)
	return err
}
