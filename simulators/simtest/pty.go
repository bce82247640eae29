package simtest

import (
	"io"
	"os"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// PTYPair opens a pty for a test to stand in for a serial device: the test talks on master
// (made pollable, so reads take deadlines: creack/pty leaves it blocking), the device is slave,
// held open until cleanup so that it keeps its settings between opens.
func PTYPair(t testing.TB) (master, slave *os.File) {
	t.Helper()
	m, slave, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	fd, err := unix.Dup(int(m.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	master = os.NewFile(uintptr(fd), m.Name())
	t.Cleanup(func() {
		master.Close()
		slave.Close()
	})
	return master, slave
}

// ReadFull reads len(b) bytes from f (a PTYPair master) within 5 s.
func ReadFull(t testing.TB, f *os.File, b []byte) {
	t.Helper()
	f.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(f, b); err != nil {
		t.Fatalf("read %d bytes: %v", len(b), err)
	}
}
