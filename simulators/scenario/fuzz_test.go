package scenario_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/floorlink/floorlink/simulators/line"
	"github.com/floorlink/floorlink/simulators/scenario"
)

// FuzzParse: Parse never panics; every problem is an *Error within the file; what it accepts
// builds a line (at a 1 ms step on the largest line) and survives Marshal and Parse unchanged.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "scenarios", "*.yaml"))
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("machines:\n  - {machine: 1, cycle: 1s, ideal_cycle: 1s, timeline: [{at: 0s, state: down, alarm: 1}]}\n"))
	f.Add([]byte("clock_start: 2026-03-29T01:59:59.999+01:00\nmachines: []\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 64<<10 {
			return
		}
		sc, err := scenario.Parse("f.yaml", data)
		if err != nil {
			// goccy counts a lone CR as a line break too.
			lines := bytes.Count(data, []byte("\n")) + bytes.Count(data, []byte("\r")) + 1
			for _, e := range unjoin(err) {
				var se *scenario.Error
				if !errors.As(e, &se) {
					t.Fatalf("error %v is not a *scenario.Error", e)
				}
				if se.File != "f.yaml" || se.Line < 0 || se.Line > lines || se.Col < 0 {
					t.Fatalf("error %v outside the file's %d lines", se, lines)
				}
			}
			return
		}
		if _, err := line.New(line.Config{Machines: line.MaxMachines, Step: time.Millisecond, Scripts: sc.Scripts}); err != nil {
			t.Fatalf("accepted a scenario that line.New refuses: %v\n%s", err, data)
		}
		again, err := scenario.Parse("again.yaml", sc.Marshal())
		if err != nil {
			t.Fatalf("Marshal wrote a file Parse refuses: %v\n%s", err, sc.Marshal())
		}
		if !again.ClockStart.Equal(sc.ClockStart) {
			t.Fatalf("clock start %v after the round trip, want %v", again.ClockStart, sc.ClockStart)
		}
		if d := cmp.Diff(sc.Scripts, again.Scripts); d != "" {
			t.Fatalf("scripts changed in the round trip (-before +after):\n%s", d)
		}
	})
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
