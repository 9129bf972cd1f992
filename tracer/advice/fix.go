package advice

import (
	"fmt"
	"time"
)

// FixKind says what a fix changes.
type FixKind string

// Kinds of fixes, as the JSON schema names them.
const (
	FixSysctl       FixKind = "sysctl"        // a kernel setting (twtrace never changes one itself)
	FixSocketOption FixKind = "socket_option" // a setsockopt() in the program
	FixProcess      FixKind = "process"       // a process to stop, restart or hand over
	FixWait         FixKind = "wait"          // time: the obstacle ends by itself
	FixCode         FixKind = "code"          // the program's own logic (close its sockets, reuse connections)
)

// Fix is one thing to do. Text is one sentence; a sysctl fix names the
// setting, its current value (read in the namespace in question) and the
// suggested one.
type Fix struct {
	Kind      FixKind    `json:"kind"`
	Text      string     `json:"text"`
	Brief     string     `json:"brief,omitempty"`     // a few words, for one-line views
	Name      string     `json:"name,omitempty"`      // sysctl: dotted name
	Current   string     `json:"current,omitempty"`   // sysctl: value now
	Suggested string     `json:"suggested,omitempty"` // sysctl: value that fixes it
	Until     *time.Time `json:"until,omitempty"`     // wait: when the obstacle ends
	// Snippets show the fix per language (socket options).
	Snippets []Snippet `json:"snippets,omitempty"`
}

// Snippet is a fix in one language.
type Snippet struct {
	Lang string `json:"lang"`
	Code string `json:"code"`
}

// reuseAddrSnippets: SO_REUSEADDR before bind(), per language, with the
// runtimes that already set it on Linux said so.
var reuseAddrSnippets = []Snippet{
	{"C", "int on = 1; setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on); /* before bind() */"},
	{"Go", "net.Listen already sets SO_REUSEADDR (a raw socket: syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1))"},
	{"Python", "sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # socketserver: allow_reuse_address = True; asyncio and http.server already set it"},
	{"Node.js", "server.listen() already sets SO_REUSEADDR (libuv does, on Linux)"},
	{"Java", "serverSocket.setReuseAddress(true); // before bind(); the JDK's server sockets already set it on Linux"},
	{"Rust", "std::net::TcpListener::bind already sets it; with socket2: socket.set_reuse_address(true)?;"},
}

// reusePortSnippets: SO_REUSEPORT on every listener of the group.
var reusePortSnippets = []Snippet{
	{"C", "int on = 1; setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on); /* on every listener, before bind() */"},
	{"Go", "net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error { return c.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, unix.SO_REUSEPORT, 1) }) }}"},
	{"Python", "sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)"},
	{"Node.js", "server.listen({port, reusePort: true}) (Node.js 22.12 and 23.1 onward)"},
	{"Java", "channel.setOption(StandardSocketOptions.SO_REUSEPORT, true);"},
	{"Rust", "socket2: socket.set_reuse_port(true)?;"},
}

// v6OnlySnippets: IPV6_V6ONLY on a [::] socket, so that it leaves IPv4 alone.
var v6OnlySnippets = []Snippet{
	{"C", "int on = 1; setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on); /* before bind() */"},
	{"Go", "listen on \"tcp6\" with a Control that sets IPV6_V6ONLY (net.Listen(\"tcp\", \"[::]:port\") is dual-stack)"},
	{"Python", "sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)"},
	{"Node.js", "server.listen({host: '::', port, ipv6Only: true})"},
	{"Java", "no per-socket switch: run with -Djava.net.preferIPv4Stack=true, or bind each family's address"},
	{"Rust", "socket2: socket.set_only_v6(true)?;"},
}

func waitFix(until time.Time, now time.Time, what string, port uint16) Fix {
	u := until.UTC()
	left := until.Sub(now)
	return Fix{
		Kind:  FixWait,
		Until: &u,
		Brief: "wait " + seconds(left),
		Text: fmt.Sprintf("wait: %s ends in %s, at %s (twtrace why %d --wait %ds blocks until then)",
			what, seconds(left), until.Local().Format("15:04:05"), port, int(roundUp(left+time.Second).Seconds())),
	}
}

// roundUp is a duration to the next whole second, for people.
func roundUp(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return (d + time.Second - 1).Truncate(time.Second)
}
