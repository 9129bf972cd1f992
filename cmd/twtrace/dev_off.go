//go:build !twtracedev

package main

import (
	"context"

	"github.com/spf13/pflag"

	"github.com/twtrace/twtrace/tracer/session"
	"github.com/twtrace/twtrace/tui"
)

// devOptions are empty in the product binary: the developer flags exist
// only in a build with -tags twtracedev (see dev.go).
type devOptions struct{}

func (*devOptions) register(*pflag.FlagSet, bool) {}
func (*devOptions) headless() bool                { return false }
func (*devOptions) start() error                  { return nil }
func (*devOptions) crash(string)                  {}
func (*devOptions) sink(fn eventSink) eventSink   { return fn }
func (*devOptions) finish(*session.Session) error { return nil }
func (*devOptions) runHeadless(context.Context, *session.Session, tui.Options) (bool, error) {
	return false, nil
}
