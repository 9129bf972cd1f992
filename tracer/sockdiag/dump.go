package sockdiag

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// ErrInterrupted is wrapped by the error of a dump the kernel flagged with
// NLM_F_DUMP_INTR: the table changed while it was read, so a socket may be
// missing or reported twice. Every socket read was still delivered; the
// caller decides whether to dump again.
//
// The TCP dump does not raise the flag on current kernels (inet_diag keeps no
// generation counter): a dump is never an atomic snapshot, flagged or not.
// Sockets that change state during a dump may be missed or seen twice.
var ErrInterrupted = errors.New("sock_diag dump interrupted by concurrent changes")

// Netlink message types and flags (linux/netlink.h).
const (
	nlmsgNoop    = 0x1
	nlmsgError   = 0x2
	nlmsgDone    = 0x3
	nlmsgOverrun = 0x4

	nlmFDumpIntr = 0x10
)

// dump follows one dump request through the datagrams of its reply.
type dump struct {
	seq, pid uint32 // of the request: replies to anything else are skipped
	typ      uint16 // the request's type, which every reply repeats
	fn       func(*Socket) error

	sock        Socket // reused for every reply: no allocation per socket
	count       int    // sockets delivered
	fnErr       error  // first error fn returned; later replies are not delivered
	interrupted bool   // a reply carried NLM_F_DUMP_INTR
	done        bool   // NLMSG_DONE, or the error that ends the dump, was read
}

// feed processes one received datagram. An error from the kernel ends the
// dump (done is set); an error in the data leaves done unset.
func (d *dump) feed(b []byte) error {
	for len(b) > 0 && !d.done {
		h, payload, rest, err := splitMessage(b)
		if err != nil {
			return err
		}
		b = rest
		if h.seq != d.seq || h.pid != d.pid {
			continue // left over from an earlier, abandoned request
		}
		if h.flags&nlmFDumpIntr != 0 {
			d.interrupted = true
		}
		switch h.typ {
		case d.typ:
			if d.fnErr != nil {
				continue // read on to NLMSG_DONE so the socket stays usable
			}
			if err := decodeMsg(payload, &d.sock); err != nil {
				return err
			}
			d.count++
			d.fnErr = d.fn(&d.sock)
		case nlmsgDone:
			d.done = true
			// A dump that fails midway says why here, as a negative errno.
			if errno := msgErrno(payload); errno != 0 {
				return fmt.Errorf("kernel ended the dump: %w", errno)
			}
		case nlmsgError:
			if len(payload) < 4 {
				return fmt.Errorf("netlink error of %d bytes: %w", len(payload), errMalformed)
			}
			errno := msgErrno(payload)
			if errno == 0 {
				continue // an acknowledgement, not an error
			}
			d.done = true // a refused request gets this and no NLMSG_DONE
			return fmt.Errorf("kernel refused the dump: %w", errno)
		case nlmsgOverrun:
			return fmt.Errorf("netlink overrun: %w", errMalformed)
		}
	}
	return nil
}

// msgErrno reads the int that begins NLMSG_ERROR and NLMSG_DONE payloads: 0
// or a negative errno. A payload too short to hold one reads as 0: an
// NLMSG_DONE may come without it.
func msgErrno(b []byte) unix.Errno {
	if len(b) < 4 {
		return 0
	}
	code := int32(binary.NativeEndian.Uint32(b))
	if code >= 0 {
		return 0
	}
	return unix.Errno(-int64(code))
}
