package event

// Reuse is a socket's address-reuse options: SO_REUSEADDR and SO_REUSEPORT.
// They decide whether a bind() beside the socket succeeds (docs/why.md), and
// sock_diag does not report them.
type Reuse uint8

const (
	ReuseKnown Reuse = 1 << iota // the other bits are valid
	ReuseAddr                    // SO_REUSEADDR (sk_reuse is SK_CAN_REUSE)
	ReusePort                    // SO_REUSEPORT
)

// Known says whether the options were read.
func (r Reuse) Known() bool { return r&ReuseKnown != 0 }

// String is "?" when unknown, else "addr", "port", "addr,port" or "-".
func (r Reuse) String() string {
	switch {
	case !r.Known():
		return "?"
	case r&(ReuseAddr|ReusePort) == ReuseAddr|ReusePort:
		return "addr,port"
	case r&ReuseAddr != 0:
		return "addr"
	case r&ReusePort != 0:
		return "port"
	}
	return "-"
}
