package line

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

// State is a machine's state, with the numeric values served by the front ends.
type State uint16

// The states. The zero State is not valid: a PLC reporting 0 is usually not initialised.
const (
	Running     State = 1
	Idle        State = 2 // starved: no part and an empty input buffer
	Blocked     State = 3 // a finished good part and a full output buffer
	Down        State = 4 // failed, waiting for repair; AlarmCode is set
	Setup       State = 5 // changeover before a new lot
	Maintenance State = 6 // planned maintenance
)

// String returns the lowercase name of s, or "state(N)" for a value outside the enum.
func (s State) String() string {
	switch s {
	case Running:
		return "running"
	case Idle:
		return "idle"
	case Blocked:
		return "blocked"
	case Down:
		return "down"
	case Setup:
		return "setup"
	case Maintenance:
		return "maintenance"
	}
	return fmt.Sprintf("state(%d)", uint16(s))
}

// MaxMachines is the largest line: one Modbus unit id (1..247) per machine.
const MaxMachines = 247

// Config describes a line. The zero value is a valid three-machine line; every field documents
// its zero-value default. A negative duration or count disables the feature where that is stated,
// and is an error elsewhere.
type Config struct {
	// Seed selects the random streams: the same Config gives the same snapshots at every tick.
	Seed int64
	// Machines is the number of machines in series, 1..MaxMachines. Zero means 3.
	Machines int
	// Step is the simulated time of one tick, 1 ms..1 s. Zero means 100 ms.
	Step time.Duration
	// BufferSize is the capacity, in parts, of each buffer between two machines. Zero means 4.
	BufferSize int
	// MTBF is the mean running time between failures. Zero means 20 min; negative means machines
	// never fail.
	MTBF time.Duration
	// MTTR is the mean repair time of a failure. Zero means 90 s.
	MTTR time.Duration
	// LotSize is the number of parts per lot; a machine does a setup before each new lot. Zero
	// means 300; negative means no setups.
	LotSize int
	// SetupTime is the mean duration of a setup (uniform within ±20%). Zero means 3 min.
	SetupTime time.Duration
	// MaintenanceInterval is the running time between planned maintenance stops. Zero means 1 h;
	// negative means no maintenance.
	MaintenanceInterval time.Duration
	// MaintenanceTime is the mean duration of a maintenance stop (uniform within ±20%). Zero means
	// 10 min.
	MaintenanceTime time.Duration
	// RejectRate is the probability that a completed part is rejected, below 1. Zero means 0.02;
	// negative means no rejects.
	RejectRate float64
	// InitialParts is the starting PartsTotal and GoodTotal of every machine, so that tests reach
	// the 16- and 32-bit rollovers quickly. Zero means 0.
	InitialParts uint32
	// InitialTick is the tick count before the first Step, so that tests reach the 32-bit wrap of
	// Machine.Tick quickly. Zero means 0.
	InitialTick uint64
	// ExtraValues is the number of extra 16-bit values every machine exposes besides its named
	// signals, 0..MaxExtraValues, to make wide devices for throughput tests: value i is
	// Machine.Extra(i), a function of the tick and i alone (no random draw, so the named signals
	// do not depend on it). The front ends serve them (simulators/README.md: Modbus holding
	// registers 100 on). Zero means none.
	ExtraValues int
	// Scripts replace the random model of some machines by timelines (Script); the others keep
	// it. New copies them. Nil means none.
	Scripts []Script
}

// MaxExtraValues is the largest Config.ExtraValues: the Modbus front end serves them from holding
// register 100 up, within the 16-bit address space.
const MaxExtraValues = 0x10000 - 100

// withDefaults returns c with zero fields replaced by their defaults, and every problem found,
// joined. Disabled features stay negative, so that Config() fed back to New gives the same line.
func (c Config) withDefaults() (Config, error) {
	var errs []error
	if c.Machines == 0 {
		c.Machines = 3
	}
	if c.Machines < 1 || c.Machines > MaxMachines {
		errs = append(errs, fmt.Errorf("machines %d outside 1..%d", c.Machines, MaxMachines))
	}
	if c.Step == 0 {
		c.Step = 100 * time.Millisecond
	}
	if c.Step < time.Millisecond || c.Step > time.Second {
		// A machine completes at most one cycle per tick; 1 s stays below the shortest cycle.
		errs = append(errs, fmt.Errorf("step %v outside 1ms..1s", c.Step))
	}
	if c.BufferSize == 0 {
		c.BufferSize = 4
	}
	if c.BufferSize < 0 {
		errs = append(errs, fmt.Errorf("buffer size %d is negative", c.BufferSize))
	}
	if c.MTBF == 0 {
		c.MTBF = 20 * time.Minute
	}
	if c.MTTR == 0 {
		c.MTTR = 90 * time.Second
	}
	if c.MTTR < 0 {
		errs = append(errs, fmt.Errorf("mttr %v is negative", c.MTTR))
	}
	if c.LotSize == 0 {
		c.LotSize = 300
	}
	if c.SetupTime == 0 {
		c.SetupTime = 3 * time.Minute
	}
	if c.SetupTime < 0 {
		errs = append(errs, fmt.Errorf("setup time %v is negative", c.SetupTime))
	}
	if c.MaintenanceInterval == 0 {
		c.MaintenanceInterval = time.Hour
	}
	if c.MaintenanceTime == 0 {
		c.MaintenanceTime = 10 * time.Minute
	}
	if c.MaintenanceTime < 0 {
		errs = append(errs, fmt.Errorf("maintenance time %v is negative", c.MaintenanceTime))
	}
	if c.ExtraValues < 0 || c.ExtraValues > MaxExtraValues {
		errs = append(errs, fmt.Errorf("extra values %d outside 0..%d", c.ExtraValues, MaxExtraValues))
	}
	switch {
	case c.RejectRate == 0:
		c.RejectRate = 0.02
	case !(c.RejectRate < 1): // also catches NaN
		errs = append(errs, fmt.Errorf("reject rate %v not below 1", c.RejectRate))
	}
	if c.Step >= time.Millisecond && c.Machines >= 1 {
		errs = append(errs, checkScripts(c.Scripts, c.Machines, c.Step)...)
	}
	if c.Scripts != nil {
		// A deep copy: the line keeps pointers into it, and the caller may reuse its slices.
		c.Scripts = slices.Clone(c.Scripts)
		for i := range c.Scripts {
			c.Scripts[i].Events = slices.Clone(c.Scripts[i].Events)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return c, fmt.Errorf("line config: %w", err)
	}
	return c, nil
}

// Machine is one machine's state at one tick: a value, safe to keep.
type Machine struct {
	State State
	// Tick is the line's tick count modulo 2^32: it rises by one per Step on every machine.
	Tick uint32
	// PartsTotal counts completed parts; GoodTotal+RejectTotal == PartsTotal (mod 2^32).
	PartsTotal  uint32
	GoodTotal   uint32
	RejectTotal uint32
	// Temperature in °C.
	Temperature float32
	// Pressure in bar (gauge), never negative.
	Pressure float32
	// SpindleSpeed in rpm; negative means reverse (machines with an even number turn in reverse).
	SpindleSpeed int32
	// CycleTimeMs is the duration of the last completed cycle; 0 before the first one.
	CycleTimeMs uint16
	// IdealCycleTimeMs is the machine's design cycle time.
	IdealCycleTimeMs uint16
	// AlarmCode is non-zero only while Down: the failure's code (simulators/README.md lists them).
	AlarmCode uint16
	// Queue is the number of parts in the machine's input buffer; always 0 for machine 1, which
	// draws from an unlimited supply.
	Queue int
}

// Extra returns the machine's extra value i (0 <= i < Config.ExtraValues) at this tick: i mod 256
// in the high byte and the tick mod 256 in the low byte, e.g. 0x0307 for value 3 at tick 263.
//
// Every extra value is self-checking on its own: the high byte proves that a reader did not take
// one value for its neighbour (a shifted register), the low byte tells which tick (modulo 256) the
// read came from. (tick+i would not do: a value read one place off would look like a read one tick later.)
func (m Machine) Extra(i int) uint16 {
	return uint16(i&0xff)<<8 | uint16(m.Tick&0xff)
}

// idealCycles are the machines' design cycle times, repeated for longer lines. Their minimum
// (1.6 s) bounds Config.Step.
var idealCycles = [...]time.Duration{
	2000 * time.Millisecond, 2500 * time.Millisecond, 1800 * time.Millisecond,
	2200 * time.Millisecond, 1600 * time.Millisecond, 2400 * time.Millisecond,
}

// alarmCodes are the failure codes a Down machine reports, drawn uniformly; simulators/README.md
// lists them. It never changes.
var alarmCodes = [...]uint16{
	101, // spindle overload
	102, // tool breakage
	203, // coolant level low
	310, // part jam at infeed
	420, // safety door opened
	511, // hydraulic pressure low
}

// Process constants. Time constants are simulated time.
const (
	ambientC      = 22.0
	tempTau       = 3 * time.Minute
	tempNoise     = 0.1 // °C, standard deviation of the reported value
	pressureTau   = 2 * time.Second
	pressureNoise = 0.02 // bar
	spindleTau    = time.Second
	spindleNoise  = 5.0  // rpm, while running
	maxJitter     = 0.25 // cap on the relative cycle jitter
	jitterMean    = 0.03 // mean relative cycle jitter (exponential)
)

// machine is the internal state of one machine. Times are simulated durations.
type machine struct {
	rng   *rand.Rand
	ideal time.Duration
	runC  float64 // temperature setpoint while running, °C
	runP  float64 // pressure setpoint, bar
	runS  float64 // spindle speed setpoint, rpm (signed)

	state     State
	remaining time.Duration // left in Down, Setup or Maintenance
	hasPart   bool
	finished  bool          // hasPart, cycle complete, waiting for room downstream
	elapsed   time.Duration // running time spent on the current part
	cycle     time.Duration // the current part's cycle time
	lastCycle time.Duration
	ttf       time.Duration // running time left until the next failure
	runSince  time.Duration // running time since the last maintenance
	lotCount  int           // parts started in the current lot
	alarm     uint16
	script    *scripted // non-nil: the machine follows a Script instead of the random model

	parts, good, reject uint32
	temp, press, speed  float64 // noise-free process values

	out Machine // the snapshot at the current tick
}

// Line is a simulated production line. It is not safe for concurrent use.
type Line struct {
	cfg  Config
	tick uint64
	m    []machine
	buf  []int // buf[i] holds parts between machine i and i+1 (0-based)
	// Per-tick smoothing factors of the first-order lags: 1 - exp(-Step/tau), computed once so
	// that every tick does the same floating-point operations.
	aTemp, aPress, aSpeed float64
}

// New returns a line at tick Config.InitialTick: machine 1 running, the others idle with empty
// buffers, process values at their running setpoints.
func New(cfg Config) (*Line, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	l := &Line{
		cfg:    cfg,
		tick:   cfg.InitialTick,
		m:      make([]machine, cfg.Machines),
		buf:    make([]int, cfg.Machines-1),
		aTemp:  lag(cfg.Step, tempTau),
		aPress: lag(cfg.Step, pressureTau),
		aSpeed: lag(cfg.Step, spindleTau),
	}
	for i := range l.m {
		m := &l.m[i]
		// One stream per machine, keyed by its number: a machine's draws never shift another's.
		m.rng = rand.New(rand.NewPCG(uint64(cfg.Seed), uint64(i+1)))
		m.ideal = idealCycles[i%len(idealCycles)]
		m.runC = 55 + 5*float64(i%5)
		m.runP = 6 + 0.5*float64(i%4)
		m.runS = 1500 + 500*float64(i%4)
		if i%2 == 1 {
			m.runS = -m.runS
		}
		m.state = Idle
		m.parts, m.good = cfg.InitialParts, cfg.InitialParts
		m.temp, m.press = m.runC, m.runP
		m.ttf = l.timeToFailure(m)
		// Stagger planned stops so that the machines do not all stop at once.
		if cfg.MaintenanceInterval > 0 {
			m.runSince = time.Duration(m.rng.Int64N(int64(cfg.MaintenanceInterval)))
		}
		if cfg.LotSize > 0 {
			m.lotCount = m.rng.IntN(cfg.LotSize)
		}
	}
	for k := range cfg.Scripts {
		s := &l.cfg.Scripts[k]
		l.startScript(s.Machine-1, s)
	}
	l.advance(0)
	return l, nil
}

func lag(step, tau time.Duration) float64 {
	return -math.Expm1(-float64(step) / float64(tau))
}

// Config returns the line's configuration with defaults applied; New(l.Config()) builds the same
// line as l started as.
func (l *Line) Config() Config { return l.cfg }

// Machines returns the number of machines.
func (l *Line) Machines() int { return len(l.m) }

// Tick returns the number of Steps taken plus Config.InitialTick.
func (l *Line) Tick() uint64 { return l.tick }

// Snapshot returns machine's state at the current tick. machine is 1-based; Snapshot panics when
// it is outside 1..Machines(), as a slice index would.
func (l *Line) Snapshot(machine int) Machine {
	return l.m[machine-1].out
}

// Step advances the line by one tick of Config.Step simulated time.
func (l *Line) Step() {
	l.tick++
	l.advance(l.cfg.Step)
}

// advance moves every machine by dt and takes the snapshots. Downstream machines move first, so
// that room freed in a buffer during a tick is usable by the machine before it in the same tick:
// Blocked always means a full output buffer in the snapshot.
func (l *Line) advance(dt time.Duration) {
	for i := len(l.m) - 1; i >= 0; i-- {
		if l.m[i].script != nil {
			l.moveScripted(i, dt)
			continue
		}
		l.move(i, dt)
	}
	// A machine found its input empty before the machine upstream of it delivered this tick; let
	// it start now, so that Idle always means an empty input buffer in the snapshot.
	for i := 1; i < len(l.m); i++ {
		if l.m[i].script == nil && l.m[i].state == Idle && l.buf[i-1] > 0 {
			l.move(i, 0)
		}
	}
	for i := range l.m {
		l.sample(i)
	}
}

// move runs machine i's state machine for dt.
func (l *Line) move(i int, dt time.Duration) {
	m := &l.m[i]
	switch m.state {
	case Down, Setup, Maintenance:
		m.remaining -= dt
		if m.remaining > 0 {
			return
		}
		// The stop ends at this tick; the machine resumes on the next one.
		m.alarm = 0
		dt = 0
	}
	if m.finished {
		if !l.put(i) {
			m.state = Blocked
			return
		}
		m.finished, m.hasPart = false, false
	}
	if !m.hasPart {
		if l.plannedStop(m) {
			return
		}
		if !l.take(i) {
			m.state = Idle
			return
		}
		m.hasPart = true
		m.elapsed = 0
		m.cycle = l.cycleTime(m)
		m.lotCount++
	}
	m.state = Running
	if l.cfg.MTBF > 0 {
		m.ttf -= dt
		if m.ttf <= 0 {
			m.state = Down
			m.alarm = alarmCodes[m.rng.IntN(len(alarmCodes))]
			m.remaining = max(l.exp(m, l.cfg.MTTR), l.cfg.Step)
			m.ttf = l.timeToFailure(m)
			return
		}
	}
	m.elapsed += dt
	m.runSince += dt
	if m.elapsed < m.cycle {
		return
	}
	m.lastCycle = m.cycle
	m.parts++
	if l.cfg.RejectRate > 0 && m.rng.Float64() < l.cfg.RejectRate {
		m.reject++
		m.hasPart = false
		return
	}
	m.good++
	if l.put(i) {
		m.hasPart = false
	} else {
		m.finished = true // Blocked from the next tick on
	}
}

// plannedStop starts a maintenance or setup stop between parts when one is due.
func (l *Line) plannedStop(m *machine) bool {
	switch {
	case l.cfg.MaintenanceInterval > 0 && m.runSince >= l.cfg.MaintenanceInterval:
		m.state = Maintenance
		m.remaining = l.around(m, l.cfg.MaintenanceTime)
		m.runSince = 0
	case l.cfg.LotSize > 0 && m.lotCount >= l.cfg.LotSize:
		m.state = Setup
		m.remaining = l.around(m, l.cfg.SetupTime)
		m.lotCount = 0
	default:
		return false
	}
	return true
}

// take moves a part from machine i's input buffer into the machine.
func (l *Line) take(i int) bool {
	if i == 0 {
		return true
	}
	if l.buf[i-1] == 0 {
		return false
	}
	l.buf[i-1]--
	return true
}

// put moves a finished part from machine i into its output buffer.
func (l *Line) put(i int) bool {
	if i == len(l.buf) {
		return true
	}
	if l.buf[i] >= l.cfg.BufferSize {
		return false
	}
	l.buf[i]++
	return true
}

// cycleTime draws a cycle time: ideal × (1 + exponential jitter), rounded up to whole ticks so
// that the reported cycle time is exactly the running time the part takes.
func (l *Line) cycleTime(m *machine) time.Duration {
	j := min(m.rng.ExpFloat64()*jitterMean, maxJitter)
	d := time.Duration(float64(m.ideal) * (1 + j))
	step := l.cfg.Step
	return (d + step - 1) / step * step
}

func (l *Line) timeToFailure(m *machine) time.Duration {
	if l.cfg.MTBF <= 0 {
		return 0
	}
	return max(l.exp(m, l.cfg.MTBF), l.cfg.Step)
}

// exp draws an exponential duration with the given mean.
func (l *Line) exp(m *machine, mean time.Duration) time.Duration {
	return time.Duration(m.rng.ExpFloat64() * float64(mean))
}

// around draws a duration uniform within ±20% of mean, at least one tick.
func (l *Line) around(m *machine, mean time.Duration) time.Duration {
	return max(time.Duration(float64(mean)*(0.8+0.4*m.rng.Float64())), l.cfg.Step)
}

// sample moves machine i's process values toward their setpoints and takes its snapshot.
func (l *Line) sample(i int) {
	m := &l.m[i]
	tempSet, pressSet, speedSet := ambientC, 0.0, 0.0
	switch m.state {
	case Running:
		tempSet, pressSet, speedSet = m.runC, m.runP, m.runS
	case Idle, Blocked:
		// Spindle stopped but hydraulics on: the machine cools slowly toward a warm idle level.
		tempSet, pressSet = ambientC+0.6*(m.runC-ambientC), m.runP
	}
	m.temp += (tempSet - m.temp) * l.aTemp
	m.press += (pressSet - m.press) * l.aPress
	m.speed += (speedSet - m.speed) * l.aSpeed

	// Noise draws happen every tick in a fixed order, whatever the state, so that the random
	// stream stays aligned between runs.
	nt, np, ns := m.rng.NormFloat64(), m.rng.NormFloat64(), m.rng.NormFloat64()
	speed := m.speed
	if m.state == Running {
		speed += ns * spindleNoise
	}
	queue := 0
	if i > 0 {
		queue = l.buf[i-1]
	}
	m.out = Machine{
		State:            m.state,
		Tick:             uint32(l.tick),
		PartsTotal:       m.parts,
		GoodTotal:        m.good,
		RejectTotal:      m.reject,
		Temperature:      float32(m.temp + nt*tempNoise),
		Pressure:         float32(max(m.press+np*pressureNoise, 0)),
		SpindleSpeed:     int32(math.Round(speed)),
		CycleTimeMs:      uint16(min(m.lastCycle.Milliseconds(), math.MaxUint16)),
		IdealCycleTimeMs: uint16(m.ideal.Milliseconds()),
		AlarmCode:        m.alarm,
		Queue:            queue,
	}
}
