// Command twchurn is a TCP connection-churn load generator for twtrace's
// overhead benchmark: it opens, uses and closes loopback connections as fast
// as possible or at a fixed rate, and reports connections/s, errors by kind
// and the CPU time it used.
//
// # Usage
//
//	twchurn [--close client|server] [--rate N] [--count N] [--duration D]
//	        [--warmup D] [-w WORKERS] [-6] [--port P] [--netns] [--json]
//
// It prints the port(s) to trace on stderr before the load starts, e.g.
// "listening on 127.0.0.1-127.0.0.8 port 41234", then one summary line, or
// with --json one object (see Result). The exit code is 0, or 1 when any
// connection failed (the errors are in the output), 2 for bad flags, 3 when
// --netns lacks privilege.
//
//	twchurn --netns --duration 30s --warmup 5s --json     # the benchmark's load
//	twchurn --rate 5000 --duration 10s                    # a paced load
//	twchurn --port 8080 --count 1000 --warmup 0s          # trace with: twtrace trace --port 8080
//
// # What one connection does
//
// The client connects and writes --size bytes (16), the server reads them and
// writes as many back, the client reads them; then the side chosen with
// --close closes first and the other closes when it reads EOF. Both ends
// have read everything before they close, so every close is a FIN, never an
// RST, and no SO_LINGER is set. That is ten sock:inet_sock_set_state events
// per connection (TransitionsPerConn), verified with twtrace trace --json:
// for 1000 client-close connections exactly 1000 each of CLOSE→SYN_SENT,
// SYN_SENT→ESTABLISHED, LISTEN→SYN_RECV, SYN_RECV→ESTABLISHED,
// ESTABLISHED→FIN_WAIT1, FIN_WAIT1→FIN_WAIT2, FIN_WAIT2→CLOSE,
// ESTABLISHED→CLOSE_WAIT, CLOSE_WAIT→LAST_ACK, LAST_ACK→CLOSE, plus
// CLOSE→LISTEN and LISTEN→CLOSE once per listener; --close server swaps the
// two closing paths; IPv6 is the same. With --netns the kernel's own counters
// agree exactly (ActiveOpens, PassiveOpens and TW equal the connections;
// OutRsts, EstabResets and TCPAbortOn* are zero): the tests check that.
//
// # Design: each worker plays both ends
//
// A worker is a goroutine locked to an OS thread, with non-blocking sockets,
// raw syscalls and an epoll instance of its own. It connects, writes the
// request, accepts from the listener it connected to and serves that
// connection, then reads its own reply and closes. On loopback the kernel
// runs the handshake, the data and the FINs in softirq inside those very
// syscalls, so each step finds its data already there: ten syscalls per
// connection, no sleep, no thread switch, no epoll call. Only a step that
// finds nothing (EAGAIN) registers its socket with epoll, so when workers
// share a listener and one accepts the other's connection, both still make
// progress (docs/performance.md compares it with the alternatives measured).
//
// The per-connection syscalls use RawSyscall6: they never block, and
// syscall.Syscall's scheduler hand-off cost 7% at the maximum rate and, at a
// fixed rate, where sysmon keeps polling to take the P of a worker asleep in
// epoll, 40% more CPU per connection. Nothing allocates per connection: no
// garbage collection runs during a load.
//
// # Pacing
//
// With --rate, all workers take tickets from one counter; ticket k is due at
// start + k/rate. The schedule is absolute, so wake-up delays never add up
// to drift, and connections are spread evenly over time whatever the number
// of workers. A worker sleeps in epoll_pwait2 (nanosecond timeout, timer
// slack 1 µs). A start more than 1 ms late is counted ("late"); overdue
// tickets start at once, so the average rate holds after a hiccup.
//
// Every wake-up costs CPU (25 µs here, as much as a connection), so a ticket
// due within --pace-slack (100 µs) starts without sleeping: at 38 000/s that
// groups starts in twos and threes and halves the CPU per connection
// (46 → 27 µs); below 10 000/s per worker it changes nothing. --pace-slack 0
// wakes for each start.
//
// # Ports and TIME_WAIT
//
// Each connection leaves a TIME_WAIT socket for 60 s on the side that closed
// first. With --close client (the default) that is the client's 4-tuple, and
// tcp_tw_reuse (2, loopback only, by default) lets connect() take it over once
// it is tcp_tw_reuse_delay (1 s) old. connect() walks the even half of
// ip_local_port_range (the odd half is bind()'s): 14 116 ports by default, so
// one server address and port would allow about 14 000 connections/s before
// every connect() scans the range for a reusable port, and about twice that
// before EADDRNOTAVAIL. twchurn therefore listens on eight addresses
// (127.0.0.1 to 127.0.0.8, all local on Linux) on one port, which a tracer
// filters on; ::1 being the only IPv6 loopback address, -6 listens on eight
// ports instead. The result's port_reuse_limit is this estimate for the
// namespace's sysctls. With --close server the server keeps the TIME_WAIT;
// the client's port is free at once, and a new SYN on the same 4-tuple
// replaces the TIME_WAIT socket.
//
// --netns re-executes twchurn in a new network namespace, brings lo up and
// sets the namespace's ip_local_port_range (1024 65535), tcp_max_tw_buckets
// (room for one TIME_WAIT per possible 4-tuple, so that none overflows) and,
// if asked, tcp_tw_reuse. The host's ports and sysctls are never touched: the
// child checks that its namespace differs from its parent's before writing a
// sysctl, and everything goes with the namespace. Without --netns twchurn
// changes no sysctl; it shares the host's TIME_WAIT table, which holds up to
// tcp_max_tw_buckets (131 072) sockets, so runs within 60 s of each other do
// not start from the same state (an overflowing close skips TIME_WAIT and is
// cheaper). A benchmark should use --netns.
//
// A run's first seconds differ from the rest: until the port range has been
// used once, connect() finds free ports; afterwards it reuses TIME_WAIT
// sockets (kernel counter TWRecycled), about 10% slower. With --netns and
// eight addresses that takes 258 000 connections (3 s at full speed): a
// --warmup of 5 s measures the steady state.
//
// # CPU time
//
// cpu_user_s and cpu_sys_s come from getrusage: their sum is the scheduler's
// exact run time of twchurn's threads, including the softirq work the kernel
// did inside its syscalls (which is most of the TCP work on loopback); the
// split between user and system is sampled at each tick. machine_busy_pct
// comes from cpuidle's exact idle times, not /proc/stat, whose tick sampling
// on this NO_HZ kernel sees a tenth of a paced load.
//
// # Measurements
//
// docs/performance.md has the connections/s and CPU per connection measured
// with each setting.
//
// # Limitations
//
//   - Loopback only, and one process: the load measures the kernel's TCP
//     lifecycle, not a network; client and server share CPUs and caches.
//   - At a fixed rate each start costs a wake-up: about 55 µs of CPU per
//     connection at 5 000/s against 22 µs at full speed.
//   - Without --netns the kernel counters are the host's (others' traffic
//     included) and previous runs' TIME_WAIT sockets change the load.
//   - --count counts started connections: with errors, fewer complete.
package main
