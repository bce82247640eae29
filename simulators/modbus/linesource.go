package modbus

import (
	"math"
	"sync"

	"github.com/floorlink/floorlink/simulators/line"
)

// The register map LineSource serves, per unit (unit id k = machine k). Addresses are 0-based PDU
// addresses; simulators/README.md has the table with Modicon reference numbers. 32-bit values
// take two registers, high word first (ABCD), except HoldingPressure, which is word-swapped
// (CDAB) on purpose so that clients exercise both orders.
const (
	HoldingState            = 0  // uint16, line.State
	HoldingTick             = 1  // uint32 ABCD, 1-2
	HoldingPartsTotal       = 3  // uint32 ABCD, 3-4
	HoldingGoodTotal        = 5  // uint32 ABCD, 5-6
	HoldingRejectTotal      = 7  // uint32 ABCD, 7-8
	HoldingPartsTotal16     = 9  // uint16, parts mod 65536
	HoldingTemperature      = 10 // float32 ABCD, 10-11, °C
	HoldingPressure         = 12 // float32 CDAB (low word first), 12-13, bar
	HoldingCycleTimeMs      = 14 // uint16
	HoldingIdealCycleTimeMs = 15 // uint16
	HoldingAlarmCode        = 16 // uint16
	HoldingSpindleSpeed     = 17 // int32 ABCD, 17-18, rpm
	HoldingTemperatureX10   = 19 // int16, °C × 10 rounded
	// HoldingSize is the size of the fixed holding table: 20..99 read as 0. Then come the
	// line's extra values (line.Config.ExtraValues, N of them), from HoldingExtra; 100+N on is
	// exception 2.
	HoldingSize = 100
	// HoldingExtra is the first of the N extra registers: register HoldingExtra+i holds
	// line.Machine.Extra(i), uint16, (i mod 256)<<8 | (tick mod 256).
	HoldingExtra = HoldingSize

	InputTemperatureX10 = 0 // int16, °C × 10 rounded
	InputPressureX100   = 1 // uint16, bar × 100 rounded
	InputTick           = 2 // uint32 ABCD, 2-3
	// InputSize is the size of the input table's first part: 4..9 read as 0. The layout block
	// follows at LayoutFirst (layout.go); everything else is exception 2.
	InputSize = 10

	CoilRunning = 0
	CoilDown    = 1
	CoilSetup   = 2
	CoilSize    = 16

	DiscreteRunning = 0
	DiscreteDown    = 1
	DiscreteBlocked = 2
	DiscreteIdle    = 3
	DiscreteSize    = 16
)

// LineSource serves a line.Line through the register map above.
type LineSource struct {
	mu    sync.Locker
	line  *line.Line
	n     int
	extra int // line.Config.ExtraValues, served from HoldingExtra
}

// NewLineSource returns a Source over l. mu guards l: whoever steps l must hold it, so that each
// request's values come from one tick. The number of machines must not change afterwards (it
// cannot: a Line's size is fixed).
func NewLineSource(l *line.Line, mu sync.Locker) *LineSource {
	return &LineSource{mu: mu, line: l, n: l.Machines(), extra: l.Config().ExtraValues}
}

// HasUnit reports whether unit is a machine of the line (1..Machines).
func (s *LineSource) HasUnit(unit byte) bool { return unit >= 1 && int(unit) <= s.n }

// Read implements Source.
func (s *LineSource) Read(unit byte, t Table, addr uint16, dst []uint16) error {
	if !s.HasUnit(unit) {
		return GatewayTargetFailed
	}
	s.mu.Lock()
	m := s.line.Snapshot(int(unit))
	s.mu.Unlock()
	var regs [HoldingSize]uint16
	var size int
	switch t {
	case HoldingRegisters:
		if int(addr)+len(dst) > HoldingSize+s.extra {
			return IllegalDataAddress
		}
		encodeHolding(&m, regs[:HoldingSize])
		n := 0
		if int(addr) < HoldingSize {
			n = copy(dst, regs[addr:])
		}
		for j := n; j < len(dst); j++ {
			dst[j] = m.Extra(int(addr) + j - HoldingExtra)
		}
		return nil
	case InputRegisters:
		if int(addr) >= LayoutFirst && int(addr)+len(dst) <= LayoutFirst+LayoutSize {
			readLayout(dst, addr, unit, m.Tick)
			return nil
		}
		size = InputSize
		encodeInput(&m, regs[:InputSize])
	case Coils:
		size = CoilSize
		regs[CoilRunning] = bit(m.State == line.Running)
		regs[CoilDown] = bit(m.State == line.Down)
		regs[CoilSetup] = bit(m.State == line.Setup)
	case DiscreteInputs:
		size = DiscreteSize
		regs[DiscreteRunning] = bit(m.State == line.Running)
		regs[DiscreteDown] = bit(m.State == line.Down)
		regs[DiscreteBlocked] = bit(m.State == line.Blocked)
		regs[DiscreteIdle] = bit(m.State == line.Idle)
	default:
		return IllegalFunction
	}
	if int(addr)+len(dst) > size {
		return IllegalDataAddress
	}
	copy(dst, regs[addr:])
	return nil
}

// encodeHolding writes m's holding registers into regs[0:20]; regs must hold at least 20.
func encodeHolding(m *line.Machine, regs []uint16) {
	regs[HoldingState] = uint16(m.State)
	put32(regs[HoldingTick:], m.Tick)
	put32(regs[HoldingPartsTotal:], m.PartsTotal)
	put32(regs[HoldingGoodTotal:], m.GoodTotal)
	put32(regs[HoldingRejectTotal:], m.RejectTotal)
	regs[HoldingPartsTotal16] = uint16(m.PartsTotal)
	put32(regs[HoldingTemperature:], math.Float32bits(m.Temperature))
	p := math.Float32bits(m.Pressure)
	regs[HoldingPressure], regs[HoldingPressure+1] = uint16(p), uint16(p>>16)
	regs[HoldingCycleTimeMs] = m.CycleTimeMs
	regs[HoldingIdealCycleTimeMs] = m.IdealCycleTimeMs
	regs[HoldingAlarmCode] = m.AlarmCode
	put32(regs[HoldingSpindleSpeed:], uint32(m.SpindleSpeed))
	regs[HoldingTemperatureX10] = uint16(temperatureX10(m.Temperature))
}

// encodeInput writes m's input registers into regs[0:4]; regs must hold at least 4.
func encodeInput(m *line.Machine, regs []uint16) {
	regs[InputTemperatureX10] = uint16(temperatureX10(m.Temperature))
	regs[InputPressureX100] = pressureX100(m.Pressure)
	put32(regs[InputTick:], m.Tick)
}

// temperatureX10 is the served int16 form of a temperature: °C × 10, rounded half away from zero,
// saturated to the int16 range.
func temperatureX10(c float32) int16 {
	v := math.Round(float64(c) * 10)
	if math.IsNaN(v) {
		return 0
	}
	return int16(min(max(v, math.MinInt16), math.MaxInt16))
}

// pressureX100 is the served uint16 form of a pressure: bar × 100, rounded, saturated to 0..65535.
func pressureX100(bar float32) uint16 {
	v := math.Round(float64(bar) * 100)
	if math.IsNaN(v) {
		return 0
	}
	return uint16(min(max(v, 0), math.MaxUint16))
}

func put32(r []uint16, v uint32) {
	r[0], r[1] = uint16(v>>16), uint16(v)
}

func bit(b bool) uint16 {
	if b {
		return 1
	}
	return 0
}
