package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The roles use raw sockets: Go's net package sets SO_REUSEADDR on every
// listener, and the story needs a server without it.

// listener binds addr:port (SO_REUSEADDR as asked) and listens.
func listener(addr [4]byte, port int, reuseaddr bool) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if reuseaddr {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			unix.Close(fd)
			return -1, err
		}
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: port, Addr: addr}); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if err := unix.Listen(fd, 128); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// serve accepts connections until SIGTERM, each handled by handle.
func serve(fd int, handle func(c int)) error {
	fmt.Println("ready")
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	go func() {
		<-term
		os.Exit(0) // the kernel closes the sockets
	}()
	for {
		c, _, err := unix.Accept4(fd, unix.SOCK_CLOEXEC)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return err
		}
		handle(c)
	}
}

// web serves on 0.0.0.0:port and closes every connection first: each one
// leaves a TIME_WAIT on the server's side of the port.
func web(port int, reuseaddr bool) error {
	fd, err := listener([4]byte{}, port, reuseaddr)
	if err != nil {
		return err
	}
	return serve(fd, func(c int) {
		unix.Write(c, []byte("HTTP/1.0 200 OK\r\n\r\nhello\n"))
		unix.Close(c)
	})
}

// webRestart is web's successor started too fast: it tries to bind, twice
// as the old one did (without SO_REUSEADDR), then with SO_REUSEADDR.
func webRestart(port int) error {
	for i, reuse := range []bool{false, false, true} {
		fd, err := listener([4]byte{}, port, reuse)
		if err == nil {
			unix.Close(fd)
			return errors.New("the port was free: no incident")
		}
		fmt.Printf("web: bind 0.0.0.0:%d (SO_REUSEADDR %v): %v\n", port, reuse, err)
		if i < 2 {
			time.Sleep(400 * time.Millisecond)
		}
	}
	return nil
}

// curl makes n requests to 127.0.0.1:port and reads each answer to its end.
func curl(port, n int) error {
	for range n {
		fd, err := dial(port)
		if err != nil {
			return err
		}
		buf := make([]byte, 512)
		for {
			k, err := unix.Read(fd, buf)
			if k <= 0 || err != nil {
				break
			}
		}
		unix.Close(fd)
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// api serves on 127.0.0.1:port; its clients close first.
func api(port int) error {
	fd, err := listener([4]byte{127, 0, 0, 1}, port, true)
	if err != nil {
		return err
	}
	return serve(fd, func(c int) {
		go func() {
			buf := make([]byte, 64)
			for {
				if k, err := unix.Read(c, buf); k <= 0 || err != nil {
					break
				}
			}
			unix.Close(c)
		}()
	})
}

// loadgen opens n connections to api, one per request, and closes each
// first: their TIME_WAITs hold the local ports until connect() finds none.
func loadgen(port, n int) error {
	refused := 0
	for range n {
		fd, err := dial(port)
		if errors.Is(err, unix.EADDRNOTAVAIL) {
			refused++
			time.Sleep(20 * time.Millisecond)
			continue
		}
		if err != nil {
			return err
		}
		unix.Write(fd, []byte("GET /\n"))
		unix.Close(fd)
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Printf("loadgen: %d of %d connections refused with EADDRNOTAVAIL\n", refused, n)
	if refused == 0 {
		return errors.New("no port ran out: no incident")
	}
	return nil
}

// dial connects to 127.0.0.1:port.
func dial(port int) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := unix.Connect(fd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}
