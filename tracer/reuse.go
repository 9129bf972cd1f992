package tracer

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"unsafe"

	"github.com/twtrace/twtrace/tracer/event"

	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/twtrace/twtrace/internal/nsthread"
)

const reuseRecordLen = int(unsafe.Sizeof(sockiterTwSockReuse{}))

// ReuseReader reads the address-reuse options of every TCP socket of a
// network namespace through a BPF iterator (iter/tcp). It needs the same
// privileges as tracing.
type ReuseReader struct {
	objs sockiterObjects
	it   *link.Iter
}

// OpenReuseReader loads and attaches the iterator program.
func OpenReuseReader() (*ReuseReader, error) {
	r := &ReuseReader{}
	if err := loadSockiterObjects(&r.objs, nil); err != nil {
		if errors.Is(err, unix.EPERM) {
			return nil, fmt.Errorf("the socket iterator needs CAP_BPF and CAP_PERFMON (run as root): %w", unix.EPERM)
		}
		return nil, fmt.Errorf("load the socket iterator: %w", err)
	}
	it, err := link.AttachIter(link.IterOptions{Program: r.objs.SockReuse})
	if err != nil {
		r.objs.Close()
		return nil, fmt.Errorf("attach the socket iterator: %w", err)
	}
	r.it = it
	return r, nil
}

// Read calls fn for every TCP socket of a network namespace (request
// sockets aside: they have no options yet): the one netnsFD refers to, or,
// with netnsFD < 0, the caller's. A socket made or closed during the walk may
// be missed; none is reported twice.
func (r *ReuseReader) Read(netnsFD int, fn func(cookie uint64, reuse event.Reuse)) error {
	// The iterator walks the namespace of the thread that opens it.
	var rc io.ReadCloser
	open := func() (err error) {
		rc, err = r.it.Open()
		return err
	}
	var err error
	if netnsFD < 0 {
		err = open()
	} else {
		err = nsthread.InNetNS(netnsFD, open)
	}
	if err != nil {
		return fmt.Errorf("open the socket iterator: %w", err)
	}
	defer rc.Close()
	return readReuse(rc, fn)
}

// readReuse decodes the iterator's records: fixed-size, little-endian
// tw_sock_reuse structs. Each read(2) returns as many whole records as fit
// and resumes the kernel's walk, so the buffer is large.
func readReuse(in io.Reader, fn func(uint64, event.Reuse)) error {
	br := bufio.NewReaderSize(in, 64<<10)
	var rec [reuseRecordLen]byte
	for {
		_, err := io.ReadFull(br, rec[:])
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case errors.Is(err, io.ErrUnexpectedEOF):
			return fmt.Errorf("socket iterator: a record cut short")
		case err != nil:
			return fmt.Errorf("read the socket iterator: %w", err)
		}
		fn(binary.LittleEndian.Uint64(rec[0:8]), reuseOf(rec[9]))
	}
}

// Close detaches and unloads the iterator.
func (r *ReuseReader) Close() error {
	return errors.Join(r.it.Close(), r.objs.Close())
}
