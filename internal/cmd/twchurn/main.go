package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes, as twtrace's.
const (
	exitOK        = 0
	exitFailure   = 1 // includes a run with connection errors
	exitUsage     = 2
	exitPrivilege = 3
)

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

// realMain runs the command and returns its exit code.
func realMain(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, errHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "twchurn: %v\nRun 'twchurn --help' for usage.\n", err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	parent, inChild := os.LookupEnv(parentEnv)
	if cfg.NetNS && !inChild {
		code, err := runInNetNS(ctx, args, stdout, stderr)
		if err != nil {
			return fail(stderr, err)
		}
		return code
	}
	if cfg.NetNS {
		if err := setupNetNS(&cfg, parent, stderr); err != nil {
			return fail(stderr, err)
		}
	}
	res, err := Run(ctx, &cfg, stderr)
	if err != nil {
		return fail(stderr, err)
	}
	if cfg.JSON {
		enc := json.NewEncoder(stdout)
		err = enc.Encode(res)
	} else {
		err = res.writeSummary(stdout)
	}
	if err != nil {
		return fail(stderr, fmt.Errorf("write result: %w", err))
	}
	return verdict(&cfg, res, stderr)
}

// verdict turns a finished run into an exit code: a run with errors, or
// one that completed nothing, did not measure what was asked.
func verdict(cfg *Config, res *Result, stderr io.Writer) int {
	code := exitOK
	if res.ErrorsTotal > 0 {
		fmt.Fprintf(stderr, "twchurn: %d connection errors (see errors)\n", res.ErrorsTotal)
		code = exitFailure
	}
	if res.Connections == 0 {
		fmt.Fprintln(stderr, "twchurn: no connection completed in the measured phase")
		code = exitFailure
	}
	if cfg.Rate > 0 && res.Connections > 0 && (res.RateErrPct < -1 || res.RateErrPct > 1) {
		// Not an error: the number is reported; but say it loudly.
		fmt.Fprintf(stderr, "twchurn: achieved %.0f/s is %+.1f%% off the target %d/s\n",
			res.ConnPerSec, res.RateErrPct, cfg.Rate)
	}
	return code
}

func fail(stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "twchurn: %v\n", err)
	if errors.Is(err, errPrivilege) {
		return exitPrivilege
	}
	return exitFailure
}
