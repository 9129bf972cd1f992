package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// churnResult is the part of twchurn's --json report the bench reads.
type churnResult struct {
	ConnPerSec  float64           `json:"conn_per_s"`
	Connections uint64            `json:"connections"`
	ErrorsTotal uint64            `json:"errors_total"`
	Errors      map[string]uint64 `json:"errors"`
	ExpectedRun uint64            `json:"transitions_expected_run"`
	Elapsed     float64           `json:"elapsed_s"`
	CPUUser     float64           `json:"cpu_user_s"` // the generator's own, getrusage (exact in total)
	CPUSys      float64           `json:"cpu_sys_s"`
}

// runChurn runs the load generator in its own network namespace (the host's
// ports and sysctls are never touched) and returns its report.
func runChurn(ctx context.Context, o *options, rate int, d time.Duration) (*churnResult, error) {
	args := []string{"--netns", "--json", "--close", o.closeSide, "-w", strconv.Itoa(o.workers),
		"--duration", d.String(), "--warmup", o.warmup.String()}
	if rate > 0 {
		args = append(args, "--rate", strconv.Itoa(rate))
	}
	cmd := exec.CommandContext(ctx, o.churn, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil && len(out) == 0 {
		return nil, fmt.Errorf("twchurn: %v: %s", err, stderr.String())
	}
	var r churnResult
	if err := json.Unmarshal(out, &r); err != nil {
		return nil, fmt.Errorf("twchurn output: %v: %s", err, out)
	}
	return &r, nil
}
