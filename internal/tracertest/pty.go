package tracertest

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// Terminal is the terminal's side of a pseudo-terminal: what a test types
// to the program, and everything the program wrote to it.
type Terminal struct {
	f   *os.File
	mu  sync.Mutex
	out bytes.Buffer
}

// Type sends keys, as a person typing them.
func (t *Terminal) Type(keys string) error {
	_, err := io.WriteString(t.f, keys)
	return err
}

// Output is everything the program wrote so far, escape sequences included.
func (t *Terminal) Output() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.out.String()
}

func (t *Terminal) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.out.Write(p)
}

// PTY opens a pseudo-terminal of w x h for a program under test that needs
// a real terminal (raw mode, its size): tty is the program's side, its
// stdin and stdout; the Terminal reads all it writes, so that it never
// blocks on a full terminal. Both close when the test ends.
func PTY(t testing.TB, w, h int) (*Terminal, *os.File) {
	t.Helper()
	f, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	fd := int(f.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock the pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("the pseudo-terminal's number: %v", err)
	}
	tty, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tty.Close() })
	ws := &unix.Winsize{Row: uint16(h), Col: uint16(w)}
	if err := unix.IoctlSetWinsize(int(tty.Fd()), unix.TIOCSWINSZ, ws); err != nil {
		t.Fatalf("size the pseudo-terminal: %v", err)
	}
	term := &Terminal{f: f}
	go io.Copy(term, f) // until the terminal closes
	return term, tty
}
