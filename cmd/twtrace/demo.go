package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/twtrace/twtrace/internal/demo"
)

// demoOptions are the flags of `twtrace demo`.
type demoOptions struct {
	text     bool
	step     bool
	all      bool
	skipWait bool
}

func newDemoCmd(stdout, stderr io.Writer) *cobra.Command {
	o := &demoOptions{}
	cmd := &cobra.Command{
		Use:   "demo [LESSON]",
		Short: "Guided TIME_WAIT lessons with real sockets, in a private network namespace",
		Long: `demo runs short lessons about TIME_WAIT, SO_REUSEADDR, SO_REUSEPORT and
tcp_tw_reuse, each a script of real sockets in a private network namespace
that it creates and removes, and narrates them step by step. Every line
about the kernel is printed once the tracer has observed the event it
describes; a lesson whose event never comes fails (exit 1).

Without LESSON it lists the lessons. On a terminal a lesson runs in the
live view, its Sockets view following the socket the narration (a pane on
the right) talks about; space goes on (--step, a countdown, the end of a
lesson), q quits. --text, or output to a pipe, narrates as text instead.

Nothing of the host changes: its sysctls, sockets, ports and namespaces
are left alone, and the lesson's namespace and processes are gone when it
ends, Ctrl-C included (exit 0).
A lesson takes a few seconds; one that must wait out a TIME_WAIT counts
down its 60 s, which a key (space, or Enter with --text on a terminal) or
--skip-wait ends early with the kernel's own means, inside the namespace.
Needs root.`,
		Example: `  sudo twtrace demo
  sudo twtrace demo restart-too-fast
  sudo twtrace demo old-version-without-reuseaddr --step
  sudo twtrace demo --all --text --skip-wait > lessons.txt`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usagef("demo takes one LESSON, got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDemo(cmd.Context(), o, args, cmd.InOrStdin(), stdout, stderr)
		},
	}
	fs := cmd.Flags()
	fs.BoolVar(&o.text, "text", false, "narrate to stdout as text, not in the live view")
	fs.BoolVar(&o.step, "step", false, "wait for a key before each step (space; with --text, Enter)")
	fs.BoolVar(&o.all, "all", false, "run every lesson, one after another")
	fs.BoolVar(&o.skipWait, "skip-wait", false, "do not wait out a TIME_WAIT: end it at once, inside the lesson's namespace")
	return cmd
}

func runDemo(ctx context.Context, o *demoOptions, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	lessons, err := o.lessons(args)
	if err != nil {
		return err
	}
	if lessons == nil {
		return listLessons(stdout)
	}
	stdinTTY := false
	if f, ok := stdin.(*os.File); ok {
		stdinTTY = isTerminal(f)
	}
	if !o.text && stdinTTY && isTerminal(stdout) {
		return runDemoLive(ctx, o, lessons, stderr)
	}
	opt := demo.TextOptions{Color: colorful(stdout), Terminal: isTerminal(stdout), Step: o.step, KeysTerminal: stdinTTY}
	if o.step || stdinTTY {
		opt.Keys = stdin
	}
	narr := demo.NewTextNarrator(stdout, opt)
	cfg := demo.Config{Narrator: narr, SkipWait: o.skipWait}
	for i, l := range lessons {
		if i > 0 {
			fmt.Fprintln(stdout)
			if err := narr.Pause(ctx); err != nil {
				break
			}
		}
		if _, err := demo.Run(ctx, l, cfg); err != nil {
			if ctx.Err() != nil {
				break
			}
			return err
		}
	}
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "\ntwtrace demo: interrupted; the lesson's namespace and processes are gone")
	}
	return nil
}

// runDemoLive runs the lessons in the live view, one program each.
func runDemoLive(ctx context.Context, o *demoOptions, lessons []*demo.Lesson, stderr io.Writer) error {
	narr, ctx := demo.NewLiveNarrator(ctx, demo.LiveOptions{Step: o.step})
	cfg := demo.Config{Narrator: narr, SkipWait: o.skipWait}
	var err error
	for _, l := range lessons {
		if _, err = demo.Run(ctx, l, cfg); err != nil || narr.Quit() {
			break
		}
	}
	interrupted := ctx.Err() != nil && !narr.Quit()
	if cerr := narr.Close(); cerr != nil {
		return cerr // the live view failed (and took the lesson down with it)
	}
	if interrupted {
		fmt.Fprintln(stderr, "twtrace demo: interrupted; the lesson's namespace and processes are gone")
		return nil
	}
	return err
}

// lessons are the lessons to run; nil to list them.
func (o *demoOptions) lessons(args []string) ([]*demo.Lesson, error) {
	switch {
	case o.all && len(args) > 0:
		return nil, usagef("--all runs every lesson: give no LESSON with it")
	case o.all:
		return demo.Lessons(), nil
	case len(args) == 0:
		if o.step || o.skipWait || o.text {
			return nil, usagef("--step, --skip-wait and --text go with a LESSON or --all")
		}
		return nil, nil
	}
	l, ok := demo.Find(args[0])
	if !ok {
		var names []string
		for _, l := range demo.Lessons() {
			names = append(names, l.Name)
		}
		return nil, usagef("no lesson %q: want one of %s", args[0], strings.Join(names, ", "))
	}
	return []*demo.Lesson{l}, nil
}

func listLessons(w io.Writer) error {
	var b strings.Builder
	b.WriteString("Lessons (sudo twtrace demo LESSON; --all for every one):\n")
	for _, l := range demo.Lessons() {
		fmt.Fprintf(&b, "  %-30s %s\n", l.Name, l.Summary)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
