package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/twtrace/twtrace/tracer/jsonl"
	"github.com/twtrace/twtrace/tracer/session"
	"github.com/twtrace/twtrace/tracer/stream"
	"github.com/twtrace/twtrace/tracer/table"
)

type socketsOptions struct {
	filters filterFlags
	json    bool
}

func newSocketsCmd(stdout, stderr io.Writer) *cobra.Command {
	o := &socketsOptions{}
	cmd := &cobra.Command{
		Use:   "sockets",
		Short: "List TCP sockets with their owners and TIME_WAIT countdowns (like ss -tanp -o)",
		Long: `List the TCP sockets of this network namespace from the kernel's own table
(sock_diag), every state including TIME_WAIT with the time left on its timer,
with the process that holds each socket (found through /proc, as ss -p does:
run as root to see every process).`,
		Example: `  twtrace sockets --port 8080
  twtrace sockets --state TIME_WAIT --json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSockets(o, stdout, stderr)
		},
	}
	o.filters.registerSnapshot(cmd.Flags())
	cmd.Flags().BoolVar(&o.json, "json", false, "write one JSON object per socket (schema: docs/jsonl.md)")
	return cmd
}

func runSockets(o *socketsOptions, stdout, stderr io.Writer) error {
	flt, err := o.filters.filter()
	if err != nil {
		return err
	}
	tab, err := session.Snapshot("/proc", -1, &flt)
	if err != nil {
		return err
	}
	if st := tab.Stats(); st.Untracked > 0 {
		fmt.Fprintf(stderr, "twtrace: %d more sockets not listed: a listing holds at most %d\n", st.Untracked, st.Sockets)
	}
	if err := session.ReadReuse(tab, -1); err != nil {
		fmt.Fprintf(stderr, "twtrace: REUSE unknown (?): %v\n", err)
	}
	now := time.Now()
	socks, _ := tab.Sockets(table.Query{Ports: flt.Ports, States: flt.States, PID: flt.PID}, now)
	if !o.json {
		return stream.WriteSockets(stdout, socks, now, colorful(stdout))
	}
	var b []byte
	for i := range socks {
		b = jsonl.AppendSocket(b, &socks[i], now)
	}
	_, err = stdout.Write(b)
	return err
}
