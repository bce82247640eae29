// Package simtest starts plcsim inside a test: a line model paced in real time (or stepped by
// hand), served over Modbus TCP on 127.0.0.1:0 and, with Options.RTU, over Modbus RTU on a
// pseudo-terminal, with every tick's snapshot kept so that a test can compare what it received
// with what the line was at that tick. Fault controls (delays, late answers, silent units,
// exceptions by unit or address range, fragmented answers, dropped and refused connections) act on
// both framings at once.
//
// Tests outside simulators/ may import only simtest (DESIGN.md's import table), so it re-exports
// the names they need from simulators/line and simulators/modbus as aliases: LineConfig, Machine,
// State and its values, Request, Exception and its codes, HoldingExtra, the layout block (Layouts,
// Layout, DataType, ByteOrder and their values), RTUOptions and Parity, AddressException, Table,
// Fragments.
//
// Caveats: the history of ticks lives in memory, Options.History ticks at most (a million by
// default, about 150 MB for three machines once full); tests run minutes, not days.
package simtest

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/floorlink/floorlink/simulators/line"
	simmodbus "github.com/floorlink/floorlink/simulators/modbus"
	"github.com/floorlink/floorlink/simulators/pace"
)

// Aliases, so that tests need not import simulators/line or simulators/modbus.
type (
	// LineConfig configures the line; see line.Config.
	LineConfig = line.Config
	// Machine is one machine at one tick; see line.Machine.
	Machine = line.Machine
	// State is a machine state; see line.State.
	State = line.State
	// Request is one answered Modbus request; see simmodbus.Request.
	Request = simmodbus.Request
	// Exception is a Modbus exception code; see simmodbus.Exception.
	Exception = simmodbus.Exception
	// Table is one of the four Modbus data tables; see simmodbus.Table.
	Table = simmodbus.Table
	// AddressException injects an exception for reads covering a range; see
	// simmodbus.AddressException.
	AddressException = simmodbus.AddressException
	// Fragments splits answers into pieces with pauses; see simmodbus.Fragments.
	Fragments = simmodbus.Fragments
	// RTUOptions describe the RTU line (baud, parity, stop bits, pacing); see
	// simmodbus.RTUOptions. RTUOptions.WireTime gives the pacing's lower bound.
	RTUOptions = simmodbus.RTUOptions
	// Parity of the RTU line; see simmodbus.Parity.
	Parity = simmodbus.Parity
	// Layout is one value of the layout block; see simmodbus.Layout.
	Layout = simmodbus.Layout
	// DataType is how a layout value is read; see simmodbus.DataType.
	DataType = simmodbus.DataType
	// ByteOrder is a layout value's byte order; see simmodbus.ByteOrder.
	ByteOrder = simmodbus.ByteOrder
)

// The Modbus data tables.
const (
	Coils            = simmodbus.Coils
	DiscreteInputs   = simmodbus.DiscreteInputs
	HoldingRegisters = simmodbus.HoldingRegisters
	InputRegisters   = simmodbus.InputRegisters
)

// RTU parities.
const (
	ParityNone = simmodbus.ParityNone
	ParityEven = simmodbus.ParityEven
	ParityOdd  = simmodbus.ParityOdd
)

// The layout block: every machine serves these values in input registers LayoutFirst to
// LayoutFirst+LayoutSize-1 (simulators/README.md has the table).
const (
	LayoutFirst = simmodbus.LayoutFirst
	LayoutSize  = simmodbus.LayoutSize
)

// Data types of the layout block.
const (
	Int16   = simmodbus.Int16
	Uint16  = simmodbus.Uint16
	Int32   = simmodbus.Int32
	Uint32  = simmodbus.Uint32
	Int64   = simmodbus.Int64
	Uint64  = simmodbus.Uint64
	Float32 = simmodbus.Float32
	Float64 = simmodbus.Float64
	String  = simmodbus.String
	BCD16   = simmodbus.BCD16
	BCD32   = simmodbus.BCD32
	Bit     = simmodbus.Bit
)

// Byte orders of the layout block.
const (
	ABCD = simmodbus.ABCD
	CDAB = simmodbus.CDAB
	BADC = simmodbus.BADC
	DCBA = simmodbus.DCBA
	AB   = simmodbus.AB
	BA   = simmodbus.BA
)

// Layouts returns the layout block's values, ordered by address; each Layout's ValueAt gives the
// value served by a unit at a tick (constants, unit id, tick and counters). The slice is a copy.
func Layouts() []Layout { return simmodbus.Layouts() }

// Counter16 and Counter32 are the layout block's fast counters at tick (ValueAt uses them).
func Counter16(tick uint32) uint16 { return simmodbus.Counter16(tick) }

// Counter32 is the layout block's 32-bit counter at tick; see Counter16.
func Counter32(tick uint32) uint32 { return simmodbus.Counter32(tick) }

// Machine states, as served in holding register 0.
const (
	Running     = line.Running
	Idle        = line.Idle
	Blocked     = line.Blocked
	Down        = line.Down
	Setup       = line.Setup
	Maintenance = line.Maintenance
)

// HoldingExtra is the first of the extra holding registers of a wide line
// (LineConfig.ExtraValues = N): register HoldingExtra+i, for i in 0..N-1, holds Machine.Extra(i),
// (i mod 256)<<8 | (tick mod 256).
const HoldingExtra = simmodbus.HoldingExtra

// Modbus exception codes.
const (
	IllegalFunction        = simmodbus.IllegalFunction
	IllegalDataAddress     = simmodbus.IllegalDataAddress
	IllegalDataValue       = simmodbus.IllegalDataValue
	ServerDeviceFailure    = simmodbus.ServerDeviceFailure
	GatewayPathUnavailable = simmodbus.GatewayPathUnavailable
	GatewayTargetFailed    = simmodbus.GatewayTargetFailed
)

// Options configure Start. The zero value is the default three-machine line, seed 0, paced at
// real time.
type Options struct {
	// Line configures the model; its zero value is the default line (see line.Config).
	Line LineConfig
	// Speed is simulated time per real time: one tick per Line.Step/Speed. Zero means 1.
	Speed float64
	// Manual stops the pacing: the line moves only by Sim.Advance, for deterministic tests.
	Manual bool
	// History is how many ticks Snapshot remembers, and how many reads TickReads keeps per
	// machine; the oldest go first. Zero means 1<<20.
	History int
	// OnRequest, when set, also observes every answered Modbus request, TCP and RTU (see
	// simmodbus.Options).
	OnRequest func(Request)
	// RTU also serves the line over Modbus RTU on a pseudo-terminal, Sim.RTUPath, which clients
	// open as a serial port; machines are the units of one RS-485 bus.
	RTU bool
	// Serial is the RTU line: baud rate, parity and stop bits for the pacing (a pty carries bytes
	// at any speed; answers are written no faster than a real line would carry them), or
	// NoPacing. The zero value is 115200 8N1, paced.
	Serial RTUOptions
}

// TickRead is one value of the tick (holding registers 1-2) that the server sent.
type TickRead struct {
	Tick uint32
	At   time.Time // when the response was handed to the connection (Request.At)
}

// Sim is a running simulator. Its methods are safe for concurrent use.
type Sim struct {
	addr  string
	tty   string // the RTU pty's path, "" without Options.RTU
	n     int
	pacer *pace.Pacer
	srv   *simmodbus.Server

	hist history // guarded by the pacer's lock

	mu    sync.Mutex
	reads [][]TickRead // per machine, up to 2*max, the newest max served; guarded by mu
	max   int
	user  func(Request)
}

// Start builds the line, starts the pacer and the Modbus TCP server on 127.0.0.1:0, and stops
// both in t.Cleanup, waiting for every goroutine. The server accepts connections when Start
// returns.
func Start(t testing.TB, opts Options) *Sim {
	t.Helper()
	l, err := line.New(opts.Line)
	if err != nil {
		t.Fatalf("simtest: %v", err)
	}
	if opts.History == 0 {
		opts.History = 1 << 20
	}
	if opts.History < 1 {
		t.Fatalf("simtest: history %d, want at least 1", opts.History)
	}
	s := &Sim{
		n:     l.Machines(),
		reads: make([][]TickRead, l.Machines()),
		max:   opts.History,
		user:  opts.OnRequest,
		hist:  history{n: l.Machines(), max: opts.History, start: l.Tick(), first: l.Tick()},
	}
	s.pacer, err = pace.New(l, pace.Options{Speed: opts.Speed, Manual: opts.Manual, OnStep: s.hist.add})
	if err != nil {
		t.Fatalf("simtest: %v", err)
	}
	s.pacer.View(s.hist.add)
	s.srv, err = simmodbus.New(simmodbus.Options{
		Source:    simmodbus.NewLineSource(l, s.pacer.Locker()),
		OnRequest: s.observe,
	})
	if err != nil {
		t.Fatalf("simtest: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("simtest: %v", err)
	}
	s.addr = ln.Addr().String()

	var pty *simmodbus.PTY
	if opts.RTU {
		if pty, err = simmodbus.OpenPTY(opts.Serial); err != nil {
			ln.Close()
			t.Fatalf("simtest: %v", err)
		}
		s.tty = pty.Path()
	}

	ctx, cancel := context.WithCancel(context.Background())
	var g errgroup.Group
	g.Go(func() error { return s.pacer.Run(ctx) })
	g.Go(func() error { return s.srv.Run(ctx, ln) })
	if pty != nil {
		g.Go(func() error { return s.srv.RunRTU(ctx, pty.Port(), opts.Serial) })
	}
	t.Cleanup(func() {
		cancel()
		if err := g.Wait(); err != nil {
			t.Errorf("simtest: %v", err)
		}
		if pty != nil {
			if err := pty.Close(); err != nil {
				t.Errorf("simtest: %v", err)
			}
		}
	})
	return s
}

// ModbusAddr returns the Modbus TCP server's address, 127.0.0.1:port.
func (s *Sim) ModbusAddr() string { return s.addr }

// RTUPath returns the path of the pseudo-terminal serving Modbus RTU (/dev/pts/N), "" without
// Options.RTU. Clients open it as a serial port, at any settings; the Sim keeps it open too, so
// bytes written while no client holds it (a late answer after the client closed) wait for the
// next client, which should flush its input first, as on a real line.
func (s *Sim) RTUPath() string { return s.tty }

// Machines returns the number of machines, which are unit ids 1..Machines().
func (s *Sim) Machines() int { return s.n }

// Tick returns the line's current tick (the full count; Machine.Tick is its low 32 bits).
func (s *Sim) Tick() (tick uint64) {
	s.pacer.View(func(l *line.Line) { tick = l.Tick() })
	return tick
}

// Current returns machine's state now. machine is 1-based; Current panics outside
// 1..Machines().
func (s *Sim) Current(machine int) (m Machine) {
	s.pacer.View(func(l *line.Line) { m = l.Snapshot(machine) })
	return m
}

// Snapshot returns machine's state at tick (as served: the low 32 bits), and false when that tick
// is not in the history: not reached yet, or older than Options.History ticks. machine is
// 1-based; Snapshot panics outside 1..Machines().
func (s *Sim) Snapshot(machine int, tick uint32) (m Machine, ok bool) {
	if machine < 1 || machine > s.n {
		panic(fmt.Sprintf("simtest: machine %d outside 1..%d", machine, s.n))
	}
	s.pacer.View(func(l *line.Line) { m, ok = s.hist.get(l.Tick(), machine, tick) })
	return m, ok
}

// TickReads returns the tick values the server sent for machine in responses that covered both
// holding registers 1 and 2, ordered by the time each was written (TickRead.At), the newest
// Options.History of them. Exceptions, partial reads of the pair and failed writes are not
// included. The slice is a copy.
//
// A read is recorded just after its response was written, so a client may hold the answer a
// moment before TickReads lists it (poll with a deadline), and a read that the client lost to a
// dropped connection after the write may still be listed.
func (s *Sim) TickReads(machine int) []TickRead {
	s.mu.Lock()
	defer s.mu.Unlock()
	if machine < 1 || machine > s.n {
		return nil
	}
	reads := s.reads[machine-1]
	return append([]TickRead(nil), reads[max(len(reads)-s.max, 0):]...)
}

// Advance steps the line n ticks at once. In a paced Sim the pacer goes on from there.
func (s *Sim) Advance(n int) { s.pacer.Advance(n) }

// SetDelay delays every Modbus answer by d; 0 removes it.
func (s *Sim) SetDelay(d time.Duration) { s.srv.SetDelay(d) }

// SetUnitDelay delays the Modbus answers for unit by d, overriding SetDelay; 0 removes it.
func (s *Sim) SetUnitDelay(unit byte, d time.Duration) { s.srv.SetUnitDelay(unit, d) }

// SetUnitException answers every Modbus request for unit with e; 0 restores normal answers.
func (s *Sim) SetUnitException(unit byte, e Exception) { s.srv.SetUnitException(unit, e) }

// SetUnitSilent makes unit stop answering (true), on TCP and RTU: requests are read and dropped,
// the connection stays open; false makes it answer again.
func (s *Sim) SetUnitSilent(unit byte, on bool) { s.srv.SetUnitSilent(unit, on) }

// SetUnitLate holds back every answer for unit by d after its request arrived (0 for none),
// without holding up other requests: the answer is written late into the same stream (the same TCP
// connection with its transaction id, the same RTU line), where a client that timed out finds it
// in front of its next answer.
func (s *Sim) SetUnitLate(unit byte, d time.Duration) { s.srv.SetUnitLate(unit, d) }

// SetAddressExceptions replaces the injected address-range exceptions (none clears them): a read
// covering any address of a range answers its code, reads around it are served.
func (s *Sim) SetAddressExceptions(list ...AddressException) { s.srv.SetAddressExceptions(list...) }

// SetFragments writes every answer, TCP and RTU, in pieces with pauses between them (e.g.
// Fragments{Gap: 20 * time.Millisecond}: three pieces); the zero Fragments restores whole writes.
func (s *Sim) SetFragments(f Fragments) { s.srv.SetFragments(f) }

// SetRefuse makes the Modbus TCP server close new connections at once (true) or accept them
// again.
func (s *Sim) SetRefuse(on bool) { s.srv.SetRefuse(on) }

// DropConnections closes every current Modbus TCP connection now.
func (s *Sim) DropConnections() { s.srv.DropConnections() }

// ModbusConnections returns the number of Modbus TCP connections being served.
func (s *Sim) ModbusConnections() int { return s.srv.Connections() }

// observe records the ticks a response carried, then calls the user's observer.
func (s *Sim) observe(r Request) {
	const tickHi, tickLo = simmodbus.HoldingTick, simmodbus.HoldingTick + 1
	if r.Function == byte(simmodbus.HoldingRegisters) && r.Exception == 0 &&
		r.Address <= tickHi && int(r.Address)+int(r.Quantity) > tickLo &&
		r.Unit >= 1 && int(r.Unit) <= s.n {
		tick := uint32(r.Values[tickHi-r.Address])<<16 | uint32(r.Values[tickLo-r.Address])
		s.mu.Lock()
		reads := append(s.reads[r.Unit-1], TickRead{Tick: tick, At: r.At})
		// Observers of different connections may run out of order; keep the slice in the order
		// the answers were written (almost always already the case: one step at most).
		for i := len(reads) - 1; i > 0 && reads[i].At.Before(reads[i-1].At); i-- {
			reads[i], reads[i-1] = reads[i-1], reads[i]
		}
		if len(reads) >= 2*s.max {
			// Drop the oldest in bulk, so that a full history costs O(1) per read.
			reads = append(reads[:0], reads[len(reads)-s.max:]...)
		}
		s.reads[r.Unit-1] = reads
		s.mu.Unlock()
	}
	if s.user != nil {
		s.user(r)
	}
}

// history is a ring of the last max ticks' snapshots, n machines per tick. Entries for tick t
// sit at ((t-start) mod max)*n.
type history struct {
	n, max int
	buf    []Machine
	start  uint64 // first tick ever recorded
	first  uint64 // oldest tick still held
	count  int    // ticks held
}

// add records l's current tick, which must follow the last one recorded.
func (h *history) add(l *line.Line) {
	pos := int((l.Tick()-h.start)%uint64(h.max)) * h.n
	if h.count < h.max {
		h.buf = append(h.buf, make([]Machine, h.n)...)
		h.count++
	} else {
		h.first++
	}
	for k := range h.n {
		h.buf[pos+k] = l.Snapshot(k + 1)
	}
}

// get returns machine's entry for the most recent tick up to now whose low 32 bits are tick.
func (h *history) get(now uint64, machine int, tick uint32) (Machine, bool) {
	t := now - uint64(uint32(now)-tick)
	if t > now || t < h.first || h.count == 0 {
		return Machine{}, false
	}
	return h.buf[int((t-h.start)%uint64(h.max))*h.n+machine-1], true
}
