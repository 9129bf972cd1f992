package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/twtrace/twtrace/internal/nsthread"
	"github.com/twtrace/twtrace/tracer"
	"github.com/twtrace/twtrace/tracer/event"
	"github.com/twtrace/twtrace/tracer/session"
)

// Config says how lessons run.
type Config struct {
	Narrator Narrator
	// SkipWait ends a TIME_WAIT the lesson would wait for at once, with
	// SOCK_DESTROY inside the lesson's namespace, instead of counting down.
	SkipWait bool
	Logger   *slog.Logger
}

// Result is what a lesson left to look at: its namespace, every event the
// tracer delivered from it, and the pids of its processes.
type Result struct {
	NetNS  uint32
	Events []event.Event
	Agents []int
}

// expectWithin bounds the wait for an event the narration talks about: the
// tracer delivers within milliseconds, on a loaded machine within a second
// or two.
const expectWithin = 10 * time.Second

// reconcileWithin bounds the wait for what only sock_diag's view shows (a
// TIME_WAIT killed or expired): about a second, but the session spaces its
// dumps by their cost, and on a host with many sockets (a dump walks every
// namespace's hash tables) the rounds come seconds apart.
const reconcileWithin = 20 * time.Second

// env is a lesson running: its namespace, the tracer watching it, and its
// processes. Lessons are scripts of its methods. The first failure is kept
// in err, and from then on every method does nothing and returns zero
// values, so that a script reads as the lesson does, and stops at the step
// that failed. Every line of narration about the kernel waits for the
// event it describes.
type env struct {
	ctx    context.Context
	cfg    Config
	lesson *Lesson
	nsFD   int
	netns  uint32
	sess   *session.Session
	rec    *recorder
	launch *launcher
	agents []*agent
	step   int
	mark   int // the recorder's position when the step began
	err    error
}

// StepError is a lesson that failed: the step, and what did not happen.
type StepError struct {
	Lesson string
	Step   int
	Err    error
}

func (e *StepError) Error() string {
	return fmt.Sprintf("lesson %s failed at step %d: %v", e.Lesson, e.Step, e.Err)
}

func (e *StepError) Unwrap() error { return e.Err }

// Run runs one lesson in a namespace of its own and removes the namespace
// and every process of the lesson before it returns, whatever happened.
// A lesson ended by ctx returns ctx's error.
func Run(ctx context.Context, l *Lesson, cfg Config) (*Result, error) {
	fd, ino, err := nsthread.NewNetNS()
	if err != nil {
		if errors.Is(err, unix.EPERM) {
			return nil, &tracer.FeatureError{Missing: "CAP_SYS_ADMIN",
				Reason: "twtrace demo needs CAP_SYS_ADMIN to create each lesson's private network namespace, which this process lacks",
				Fix:    "run it as root (sudo)", Err: err}
		}
		return nil, err
	}
	defer unix.Close(fd)
	res := &Result{NetNS: ino}
	sess, err := session.Start(session.Config{
		Tracer:     tracer.Config{Filter: event.Filter{NetNS: ino}, Logger: cfg.Logger},
		Namespaces: []int{fd},
		Logger:     cfg.Logger,
	})
	if err != nil {
		return res, err
	}
	defer sess.Close()
	e := &env{ctx: ctx, cfg: cfg, lesson: l, nsFD: fd, netns: ino, sess: sess, rec: newRecorder(ino)}
	viewer, _ := cfg.Narrator.(Viewer)
	var view func([]event.Event)
	if viewer != nil {
		if view, err = viewer.Watch(sess.Table(), ino); err != nil {
			return res, err
		}
	}
	runCtx, stop := context.WithCancel(ctx)
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		e.rec.end(sess.Run(runCtx, func(batch []event.Event) error {
			if view != nil {
				view(batch)
			}
			return e.rec.sink(batch)
		}))
	}()
	if e.launch, err = startLauncher(fd, ino); err == nil {
		err = e.run()
		e.cleanup()
		e.launch.stop()
	}
	stop()
	<-ended
	if viewer != nil {
		viewer.Done(ctx, err)
	}
	res.Events = e.rec.events(0)
	for _, a := range e.agents {
		res.Agents = append(res.Agents, a.PID)
	}
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	return res, err
}

func (e *env) run() error {
	e.show(Line{Kind: LineTitle, Text: e.lesson.Summary})
	e.say("In a private network namespace (inode %d) with loopback up: "+
		"the host's sockets, ports and settings are not touched, and it goes when the lesson ends.", e.netns)
	e.lesson.run(e)
	e.show(Line{Kind: LineDone, Text: e.lesson.Moral})
	switch {
	case e.err == nil:
		return nil
	case e.ctx.Err() != nil:
		return e.ctx.Err()
	}
	return &StepError{Lesson: e.lesson.Name, Step: e.step, Err: e.err}
}

// cleanup ends every process of the lesson: asked first, then killed.
func (e *env) cleanup() {
	for _, a := range e.agents {
		select {
		case <-a.exited:
		default:
			if e.ctx.Err() != nil {
				a.kill()
			} else {
				_ = a.exit()
			}
		}
	}
}

// fail keeps the lesson's first failure.
func (e *env) fail(err error) {
	if e.err == nil {
		e.err = err
	}
}

func (e *env) failf(format string, args ...any) { e.fail(fmt.Errorf(format, args...)) }

func (e *env) show(l Line) {
	if e.err == nil {
		l.Lesson, l.Step, l.Port = e.lesson.Name, e.step, service.Port()
		e.fail(e.cfg.Narrator.Show(l))
	}
}

// Step begins a step: a pause with --step, then what the step does.
func (e *env) Step(format string, args ...any) {
	if e.err != nil {
		return
	}
	if e.step > 0 {
		if err := e.cfg.Narrator.Pause(e.ctx); err != nil {
			e.fail(err)
			return
		}
	}
	e.step++
	e.mark = e.rec.mark()
	e.show(Line{Kind: LineStep, Text: fmt.Sprintf(format, args...)})
}

// say explains what was just observed.
func (e *env) say(format string, args ...any) {
	e.show(Line{Kind: LineSay, Text: fmt.Sprintf(format, args...)})
}

// Expect waits for the first event of the step that matches, and quotes
// it; nil if it did not come.
func (e *env) Expect(what string, m matcher) *event.Event {
	if evs := e.ExpectN(what, 1, m); len(evs) == 1 {
		return &evs[0]
	}
	return nil
}

// ExpectN waits for n events of the step that match, and quotes the first
// and the last.
func (e *env) ExpectN(what string, n int, m matcher) []event.Event {
	return e.expectFrom(e.mark, what, n, expectWithin, m)
}

func (e *env) expectFrom(from int, what string, n int, d time.Duration, m matcher) []event.Event {
	if e.err != nil {
		return nil
	}
	evs, err := e.rec.wait(e.ctx, from, n, d, what, m)
	if err != nil {
		e.fail(err)
		return nil
	}
	e.show(Line{Kind: LineEvent, Event: &evs[0]})
	if n > 2 {
		e.say("... %d more like it ...", n-2)
	}
	if n > 1 {
		e.show(Line{Kind: LineEvent, Event: &evs[n-1]})
	}
	return evs
}

// pace waits d, a pause the kernel needs (not a narration's timer).
func (e *env) pace(d time.Duration) {
	if e.err != nil || d <= 0 {
		return
	}
	select {
	case <-time.After(d):
	case <-e.ctx.Done():
		e.fail(e.ctx.Err())
	}
}

// sysctl sets a setting of the lesson's namespace, on a thread that is
// checked to be inside it, and says so with the host's own value beside.
func (e *env) sysctl(name, value string) {
	if e.err != nil {
		return
	}
	path := "/proc/sys/" + strings.ReplaceAll(name, ".", "/")
	var inside string
	err := nsthread.InNetNS(e.nsFD, func() error {
		if ino, err := nsthread.ThreadNetNS(); err != nil || ino != e.netns {
			return fmt.Errorf("refusing to set %s: the thread is not in the lesson's namespace", name)
		}
		if err := os.WriteFile(path, []byte(value), 0); err != nil {
			return fmt.Errorf("set %s in the lesson's namespace: %w", name, err)
		}
		b, err := os.ReadFile(path)
		inside = strings.Join(strings.Fields(string(b)), " ")
		return err
	})
	switch {
	case err != nil:
		e.fail(err)
		return
	case inside != value:
		e.failf("%s reads %q in the lesson's namespace after setting it to %q", name, inside, value)
		return
	}
	host := "unknown"
	if b, err := os.ReadFile(path); err == nil {
		host = strings.Join(strings.Fields(string(b)), " ")
	}
	e.say("%s = %s in the lesson's namespace (the host's stays %s).", name, value, host)
}
