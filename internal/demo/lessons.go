// Package demo is `twtrace demo`: short lessons about TIME_WAIT and
// "Address already in use", each a script of real sockets in a private
// network namespace, narrated as the tracer observes what the narration
// describes. A line about the kernel is shown only once the event it talks
// about has arrived; a lesson whose event never comes fails, loudly.
//
// The lesson's servers and clients are processes (twtrace re-executed as an
// agent, see Agent), so that they have pids and names that events and
// `twtrace why` show; they die with the lesson, and with twtrace.
package demo

import "net/netip"

// Lesson is one of the lessons.
type Lesson struct {
	Name    string
	Summary string // what it shows, in one line
	Moral   string // what to take away, said at its end
	run     func(*env)
}

// Lessons are the lessons, in the order --all runs them.
func Lessons() []*Lesson {
	return []*Lesson{
		restartTooFast, oldVersion, portHeld, whoClosesFirst,
		clientChurn, closeWaitLeak, zeroDowntime,
	}
}

// Find returns the lesson with the name.
func Find(name string) (*Lesson, bool) {
	for _, l := range Lessons() {
		if l.Name == name {
			return l, true
		}
	}
	return nil, false
}

// service is where the lessons' servers listen, inside their namespace.
var service = netip.MustParseAddrPort("127.0.0.1:9000")
