package modbus

import (
	"encoding/binary"
	"errors"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/creack/pty"
	"github.com/goburrow/serial"
)

// rtuSlave answers RTU read requests from a testServer's tables, through a handler tests can
// make misbehave. It is written independently of the driver's framing: it parses 8-byte read
// requests by their CRC (its own table-free CRC below, crcRef) and writes whole frames.
type rtuSlave struct {
	tables  *testServer // its tables and request counter; no listener
	mu      sync.Mutex
	handler func(c *rtuConn, req request)
	// silent units never answer.
	silent map[byte]bool
}

// rtuConn is one answer channel: the pty master or an in-memory port.
type rtuConn struct {
	s     *rtuSlave
	write func(b []byte) // one write to the line
	quit  <-chan struct{}
}

func newRTUSlave(tb testing.TB) *rtuSlave {
	return &rtuSlave{tables: newServer(tb), silent: map[byte]bool{}}
}

func (s *rtuSlave) setHandler(h func(c *rtuConn, req request)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handler = h
}

func (s *rtuSlave) setSilent(unit byte, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.silent[unit] = on
}

// serve parses requests out of the byte stream buf (what arrived so far) and answers each; it
// returns what is left of buf.
func (s *rtuSlave) serve(c *rtuConn, buf []byte) []byte {
	for len(buf) >= 8 {
		if crcRef(buf[:6]) != binary.LittleEndian.Uint16(buf[6:]) {
			buf = buf[1:] // not a request: resynchronise byte by byte
			continue
		}
		req := request{
			n:     s.tables.requests.Add(1),
			unit:  buf[0],
			fc:    buf[1],
			addr:  binary.BigEndian.Uint16(buf[2:]),
			count: binary.BigEndian.Uint16(buf[4:]),
		}
		buf = buf[8:]
		s.mu.Lock()
		h, silent := s.handler, s.silent[req.unit]
		s.mu.Unlock()
		if silent {
			continue
		}
		if h == nil {
			h = (*rtuConn).answer
		}
		h(c, req)
	}
	return buf
}

// frame is the RTU frame of pdu for unit.
func rtuFrame(unit byte, pdu []byte) []byte {
	b := append([]byte{unit}, pdu...)
	return binary.LittleEndian.AppendUint16(b, crcRef(b))
}

// reply is the correct answer frame to req.
func (c *rtuConn) reply(req request) []byte {
	sc := serverConn{s: c.s.tables}
	return rtuFrame(req.unit, sc.pdu(req))
}

func (c *rtuConn) answer(req request) { c.write(c.reply(req)) }

func (c *rtuConn) exception(req request, code byte) {
	c.write(rtuFrame(req.unit, []byte{req.fc | 0x80, code}))
}

// wait waits d, or until the slave shuts down (then false).
func (c *rtuConn) wait(d time.Duration) bool {
	select {
	case <-time.After(d):
		return true
	case <-c.quit:
		return false
	}
}

// fragments writes b in pieces of n bytes, gap apart.
func (c *rtuConn) fragments(b []byte, n int, gap time.Duration) {
	for len(b) > 0 {
		k := min(n, len(b))
		c.write(b[:k])
		b = b[k:]
		if len(b) > 0 && !c.wait(gap) {
			return
		}
	}
}

// crcRef is the Modbus CRC computed bit by bit from its definition (MODBUS over Serial Line
// V1.02, 6.2.2), independent of the driver's crc16.
func crcRef(b []byte) uint16 {
	reg := uint16(0xFFFF)
	for _, c := range b {
		reg ^= uint16(c)
		for i := 0; i < 8; i++ {
			lsb := reg & 1
			reg >>= 1
			if lsb == 1 {
				reg ^= 0xA001
			}
		}
	}
	return reg
}

// ptyServer is an rtuSlave on the master side of a pseudo-terminal; the driver opens the slave
// side by its path with goburrow/serial, as it would /dev/ttyUSB0.
type ptyServer struct {
	*rtuSlave
	path        string
	master, tty *os.File
	wg          sync.WaitGroup
	quit        chan struct{}
	writes      atomic.Int64
}

// startPTY opens a pty in raw mode and serves it until Cleanup.
func startPTY(tb testing.TB) *ptyServer {
	tb.Helper()
	master, tty, err := pty.Open()
	if err != nil {
		tb.Fatalf("open pty: %v", err)
	}
	// Raw mode from the start: goburrow/serial restores the termios it found when it closes
	// the port, and a cooked, echoing pty would send late answers back to the master.
	if err := makeRaw(tty); err != nil {
		tb.Fatalf("pty raw mode: %v", err)
	}
	p := &ptyServer{rtuSlave: newRTUSlave(tb), path: tty.Name(), master: master, tty: tty, quit: make(chan struct{})}
	c := &rtuConn{s: p.rtuSlave, quit: p.quit, write: func(b []byte) {
		p.writes.Add(1)
		master.Write(b)
	}}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		var buf []byte
		chunk := make([]byte, 512)
		for {
			n, err := master.Read(chunk)
			if err != nil {
				return
			}
			buf = p.serve(c, append(buf, chunk[:n]...))
		}
	}()
	tb.Cleanup(func() {
		close(p.quit)
		tty.Close()
		master.Close()
		p.wg.Wait()
	})
	return p
}

// makeRaw is cfmakeraw(3) on f.
func makeRaw(f *os.File) error {
	var t syscall.Termios
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), syscall.TCGETS, uintptr(unsafe.Pointer(&t))); e != 0 {
		return e
	}
	t.Iflag &^= syscall.IGNBRK | syscall.BRKINT | syscall.PARMRK | syscall.ISTRIP | syscall.INLCR | syscall.IGNCR | syscall.ICRNL | syscall.IXON
	t.Oflag &^= syscall.OPOST
	t.Lflag &^= syscall.ECHO | syscall.ECHONL | syscall.ICANON | syscall.ISIG | syscall.IEXTEN
	t.Cflag &^= syscall.CSIZE | syscall.PARENB
	t.Cflag |= syscall.CS8
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), syscall.TCSETS, uintptr(unsafe.Pointer(&t))); e != 0 {
		return e
	}
	return nil
}

// memBus is an rtuSlave behind in-memory serial ports, for tests under testing/synctest (a
// goroutine blocked on a real file is not durably blocked). Its open is the driver's openFunc.
type memBus struct {
	*rtuSlave
	tb    testing.TB
	wg    sync.WaitGroup
	quit  chan struct{}
	mu    sync.Mutex
	ports []*memPort
	// refuse makes open fail, as when a USB adapter is unplugged.
	refuse atomic.Bool
	opens  atomic.Int64
}

func newMemBus(tb testing.TB) *memBus {
	b := &memBus{rtuSlave: newRTUSlave(tb), tb: tb, quit: make(chan struct{})}
	tb.Cleanup(b.close)
	return b
}

func (b *memBus) close() {
	select {
	case <-b.quit:
		return
	default:
	}
	close(b.quit)
	b.mu.Lock()
	for _, p := range b.ports {
		p.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

func (b *memBus) open(cfg *serial.Config) (io.ReadWriteCloser, error) {
	b.opens.Add(1)
	if b.refuse.Load() {
		return nil, &os.PathError{Op: "open", Path: cfg.Address, Err: syscall.ENOENT}
	}
	p := &memPort{slice: cfg.Timeout, ready: make(chan struct{}, 1), reqs: make(chan []byte, 16), done: make(chan struct{})}
	b.mu.Lock()
	b.ports = append(b.ports, p)
	b.mu.Unlock()
	c := &rtuConn{s: b.rtuSlave, quit: b.quit, write: p.deliver}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		var buf []byte
		for {
			select {
			case req := <-p.reqs:
				buf = b.serve(c, append(buf, req...))
			case <-p.done:
				return
			case <-b.quit:
				return
			}
		}
	}()
	return p, nil
}

// memPort is the driver's end of an in-memory serial line. Like goburrow/serial's port, Read
// waits at most slice for a byte and then returns serial.ErrTimeout.
type memPort struct {
	slice time.Duration
	mu    sync.Mutex
	in    []byte // on its way to the driver
	ready chan struct{}
	reqs  chan []byte // written by the driver
	done  chan struct{}
	once  sync.Once
}

func (p *memPort) Read(b []byte) (int, error) {
	timer := time.NewTimer(p.slice)
	defer timer.Stop()
	for {
		p.mu.Lock()
		if len(p.in) > 0 {
			n := copy(b, p.in)
			p.in = p.in[n:]
			p.mu.Unlock()
			return n, nil
		}
		p.mu.Unlock()
		select {
		case <-p.done:
			return 0, os.ErrClosed
		case <-p.ready:
		case <-timer.C:
			return 0, serial.ErrTimeout
		}
	}
}

func (p *memPort) Write(b []byte) (int, error) {
	select {
	case <-p.done:
		return 0, os.ErrClosed
	case p.reqs <- append([]byte(nil), b...):
		return len(b), nil
	}
}

func (p *memPort) Close() error {
	p.once.Do(func() { close(p.done) })
	return nil
}

// deliver puts b on the line toward the driver.
func (p *memPort) deliver(b []byte) {
	p.mu.Lock()
	p.in = append(p.in, b...)
	p.mu.Unlock()
	select {
	case p.ready <- struct{}{}:
	default:
	}
}

var errNoFrame = errors.New("no frame")
