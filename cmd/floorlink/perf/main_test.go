// Package perf measures the built floorlink binary under load (issue 4, acceptance 5): plcsim's
// wide line over Modbus TCP, a real Mosquitto, and a subscriber that checks what arrives.
//
// The test proves correctness only; the benchmarks report speed and footprint, read from outside
// the agent: CPU from /proc/PID/stat, RSS from /proc/PID/status, the Go heap from the runtime's
// own GODEBUG=gctrace=1 lines in the agent's log.
//
//	go test -run 'TestThroughput_ZeroLoss' -count 1 -v ./cmd/floorlink/perf/
//	go test -run '^$' -bench 'EndToEnd_100kSamples' -benchtime 1x -count 1 -v ./cmd/floorlink/perf/
//	go test -run '^$' -bench 'Drain_1GiBBacklog' -benchtime 1x -count 1 -timeout 30m -v ./cmd/floorlink/perf/
package perf_test

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/floorlink/floorlink/cmd/floorlink/floorlinktest"
)

// agentBin is the floorlink binary, built once for the package without -race: the subprocess is
// the product measured, the race detector runs on the tests' own code.
var agentBin string

func TestMain(m *testing.M) { floorlinktest.Main(m, &agentBin) }

// agentProc is a running floorlink subprocess and when it was started.
type agentProc struct {
	*floorlinktest.Agent
	tb      testing.TB
	started time.Time
}

// startAgent runs the agent on cfgPath with GODEBUG=gctrace=1 (its Go heap, seen from outside)
// and the extra environment env.
func startAgent(tb testing.TB, cfgPath string, env ...string) *agentProc {
	tb.Helper()
	started := time.Now()
	a := floorlinktest.Start(tb, agentBin, cfgPath, append([]string{"GODEBUG=gctrace=1"}, env...)...)
	return &agentProc{Agent: a, tb: tb, started: started}
}

// stop sends SIGTERM and returns the exit code, failing if the agent takes longer than within.
func (a *agentProc) stop(within time.Duration) int {
	a.tb.Helper()
	return a.Stop(syscall.SIGTERM, within)
}

func (a *agentProc) exited() bool {
	select {
	case <-a.Done():
		return true
	default:
		return false
	}
}

// gcLine matches a gctrace line: "gc 7 @1.204s 0%: ... 4->5->2 MB, 5 MB goal".
var gcLine = regexp.MustCompile(`^gc \d+ @([0-9.]+)s .* (\d+)->(\d+)->(\d+) MB, (\d+) MB goal`)

// heap is what the agent's gctrace lines say of its Go heap over a span of its life.
type heap struct {
	PeakMB int // largest heap at the start or end of a GC: the most the Go heap held
	LiveMB int // largest live heap after a GC
	GCs    int
}

// goHeap returns the Go heap from the gctrace lines of the agent's log before and from from (the
// time since the process started).
func (a *agentProc) goHeap(from time.Duration) (before, after heap) {
	for line := range strings.Lines(a.Log()) {
		m := gcLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		at, _ := strconv.ParseFloat(m[1], 64)
		start, _ := strconv.Atoi(m[2])
		end, _ := strconv.Atoi(m[3])
		live, _ := strconv.Atoi(m[4])
		h := &before
		if time.Duration(at*float64(time.Second)) >= from {
			h = &after
		}
		h.GCs++
		h.PeakMB, h.LiveMB = max(h.PeakMB, start, end), max(h.LiveMB, live)
	}
	return before, after
}

// procCPU returns the CPU time (user + system) the process has used, from /proc/PID/stat.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; the fields after its ')' are fixed: state is
	// field 3, utime 14, stime 15, in clock ticks (USER_HZ, 100 on Linux's supported builds).
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields after the name", pid, len(f))
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q stime %q", pid, f[11], f[12])
	}
	const userHZ = 100
	return time.Duration(utime+stime) * time.Second / userHZ, nil
}

// memory is a process's resident memory from /proc/PID/status, in KiB.
type memory struct {
	VmRSS, VmHWM, RssAnon, RssFile int64
}

func procMemory(pid int) (memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, err
	}
	var m memory
	for line := range strings.Lines(string(b)) {
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		var dst *int64
		switch key {
		case "VmRSS":
			dst = &m.VmRSS
		case "VmHWM":
			dst = &m.VmHWM
		case "RssAnon":
			dst = &m.RssAnon
		case "RssFile":
			dst = &m.RssFile
		default:
			continue
		}
		*dst, _ = strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
	}
	return m, nil
}

// sampler reads a process's memory every period until stopped, keeping the peaks: VmHWM is the
// kernel's own peak of VmRSS, but RssAnon has no peak counter.
type sampler struct {
	mu   sync.Mutex
	last memory
	peak memory // per field
	stop chan struct{}
	done chan struct{}
}

func startSampler(pid int, period time.Duration) *sampler {
	s := &sampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			if m, err := procMemory(pid); err == nil {
				s.mu.Lock()
				s.last = m
				s.peak = memory{VmRSS: max(s.peak.VmRSS, m.VmRSS), VmHWM: max(s.peak.VmHWM, m.VmHWM),
					RssAnon: max(s.peak.RssAnon, m.RssAnon), RssFile: max(s.peak.RssFile, m.RssFile)}
				s.mu.Unlock()
			}
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// resetPeak returns the peaks so far and starts new ones from the last reading.
func (s *sampler) resetPeak() memory {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.peak
	s.peak = s.last
	return p
}

// finish stops the sampler and returns the last reading and the peaks since the last resetPeak.
func (s *sampler) finish() (last, peak memory) {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last, s.peak
}

func mib(kib int64) float64 { return float64(kib) / 1024 }

func waitFor(tb testing.TB, timeout time.Duration, fn func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("after %v: %v", timeout, err)
		}
		<-time.After(50 * time.Millisecond)
	}
}
