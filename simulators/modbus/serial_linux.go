package modbus

import (
	"errors"
	"fmt"
	"os"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// PTY is a pseudo-terminal for RunRTU: the server serves the master side (Port), clients open
// Path, the slave side, as they would open /dev/ttyUSB0.
//
// The PTY keeps the slave side open itself for its whole life. Without that, the master reads
// EIO whenever no client holds the slave open, between two clients, say. The cost: bytes written
// while no client has it open (a late answer after the client left) wait in the slave's input
// queue for the next client, which, like a client on a real line, should flush its input first.
type PTY struct {
	master *os.File
	slave  *os.File
}

// OpenPTY creates a pseudo-terminal in raw mode (no echo, no line editing, 8 data bits) with the
// line settings of opts (baud, parity, stop bits: a pty carries bytes at any speed, but clients
// that read them back see what they expect).
func OpenPTY(opts RTUOptions) (*PTY, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	master, slave, err := pty.Open()
	if err != nil {
		return nil, fmt.Errorf("open pty: %w", err)
	}
	if master, err = pollable(master); err != nil {
		slave.Close()
		return nil, fmt.Errorf("open pty: %w", err)
	}
	// The pty does not care for the speed; any the kernel knows will do when opts' is exotic.
	if err := configure(slave, o, false); err != nil {
		master.Close()
		slave.Close()
		return nil, fmt.Errorf("configure pty %s: %w", slave.Name(), err)
	}
	return &PTY{master: master, slave: slave}, nil
}

// Path returns the slave side's path, /dev/pts/N, for clients to open.
func (p *PTY) Path() string { return p.slave.Name() }

// Port returns the master side, for RunRTU (which closes it when it returns).
func (p *PTY) Port() Port { return p.master }

// Close closes both sides. It is safe to call twice, and after RunRTU closed the master.
func (p *PTY) Close() error {
	errM := p.master.Close()
	errS := p.slave.Close()
	if errors.Is(errM, os.ErrClosed) {
		errM = nil
	}
	if errors.Is(errS, os.ErrClosed) {
		errS = nil
	}
	return errors.Join(errM, errS)
}

// pollable returns f as a file the Go runtime's poller serves, so that read deadlines and Close
// interrupt a blocked read, and closes f. creack/pty's ioctls call Fd(), which puts the master in
// blocking mode for good; a non-blocking duplicate of the descriptor starts afresh.
func pollable(f *os.File) (*os.File, error) {
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	dup := -1
	var dupErr error
	if err := rc.Control(func(fd uintptr) {
		dup, dupErr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return nil, err
	}
	if dupErr != nil {
		return nil, fmt.Errorf("dup %s: %w", f.Name(), dupErr)
	}
	if err := unix.SetNonblock(dup, true); err != nil {
		unix.Close(dup)
		return nil, fmt.Errorf("set %s non-blocking: %w", f.Name(), err)
	}
	return os.NewFile(uintptr(dup), f.Name()), nil
}

// OpenSerial opens the serial device at path (an RS-485 adapter, /dev/ttyUSB0) in raw mode with
// the baud rate, parity and stop bits of opts, for RunRTU. The baud rate must be one the kernel
// knows by name (termios B* constants).
func OpenSerial(path string, opts RTUOptions) (*os.File, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	// O_NONBLOCK: opening must not wait for a modem's carrier; the Go runtime's poller then
	// serves reads with deadlines.
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("open serial device: %w", err)
	}
	if err := configure(f, o, true); err != nil {
		f.Close()
		return nil, fmt.Errorf("configure serial device %s: %w", path, err)
	}
	return f, nil
}

// bauds are the speeds termios knows by name.
var bauds = map[int]uint32{
	50: unix.B50, 75: unix.B75, 110: unix.B110, 134: unix.B134, 150: unix.B150, 200: unix.B200,
	300: unix.B300, 600: unix.B600, 1200: unix.B1200, 1800: unix.B1800, 2400: unix.B2400,
	4800: unix.B4800, 9600: unix.B9600, 19200: unix.B19200, 38400: unix.B38400,
	57600: unix.B57600, 115200: unix.B115200, 230400: unix.B230400, 460800: unix.B460800,
	500000: unix.B500000, 576000: unix.B576000, 921600: unix.B921600, 1000000: unix.B1000000,
	1152000: unix.B1152000, 1500000: unix.B1500000, 2000000: unix.B2000000,
	2500000: unix.B2500000, 3000000: unix.B3000000, 3500000: unix.B3500000,
	4000000: unix.B4000000,
}

// configure puts the terminal f in raw mode (cfmakeraw(3)) with o's line settings. strict fails
// on a speed termios has no name for; otherwise the speed is left as it is.
func configure(f *os.File, o RTUOptions, strict bool) error {
	speed, ok := bauds[o.Baud]
	if !ok && strict {
		return fmt.Errorf("baud %d: not a standard termios speed", o.Baud)
	}
	// Through SyscallConn, not f.Fd(): Fd would put the file in blocking mode and read
	// deadlines would stop working.
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ioErr error
	err = rc.Control(func(fd uintptr) {
		t, err := unix.IoctlGetTermios(int(fd), unix.TCGETS)
		if err != nil {
			ioErr = fmt.Errorf("get termios: %w", err)
			return
		}
		t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR |
			unix.ICRNL | unix.IXON | unix.IXOFF | unix.IXANY | unix.INPCK
		t.Oflag &^= unix.OPOST
		t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
		t.Cflag &^= unix.CSIZE | unix.PARENB | unix.PARODD | unix.CSTOPB | unix.CRTSCTS
		t.Cflag |= unix.CS8 | unix.CREAD | unix.CLOCAL
		switch o.Parity {
		case ParityEven:
			t.Cflag |= unix.PARENB
		case ParityOdd:
			t.Cflag |= unix.PARENB | unix.PARODD
		}
		if o.StopBits == 2 {
			t.Cflag |= unix.CSTOPB
		}
		if ok {
			t.Cflag = t.Cflag&^unix.CBAUD | speed
			t.Ispeed, t.Ospeed = speed, speed
		}
		t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
		if err := unix.IoctlSetTermios(int(fd), unix.TCSETS, t); err != nil {
			ioErr = fmt.Errorf("set termios: %w", err)
		}
	})
	if err != nil {
		return err
	}
	return ioErr
}
