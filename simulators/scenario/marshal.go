package scenario

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Marshal returns sc as a scenario file that Parse reads back into the same Scenario, for tests
// that generate their scenarios. sc must be valid (as Parse returns it); Marshal does not check.
func (sc *Scenario) Marshal() []byte {
	var b strings.Builder
	if !sc.ClockStart.IsZero() {
		fmt.Fprintf(&b, "clock_start: %s\n", sc.ClockStart.Format(time.RFC3339Nano))
	}
	b.WriteString("machines:\n")
	for _, s := range sc.Scripts {
		fmt.Fprintf(&b, "  - machine: %d\n    cycle: %v\n    ideal_cycle: %v\n", s.Machine, s.Cycle, s.IdealCycle)
		if s.RejectEvery != 0 {
			fmt.Fprintf(&b, "    reject_every: %d\n", s.RejectEvery)
		}
		if s.RejectRate != 0 {
			fmt.Fprintf(&b, "    reject_rate: %s\n", strconv.FormatFloat(s.RejectRate, 'g', -1, 64))
		}
		if s.StartParts != 0 {
			fmt.Fprintf(&b, "    start_parts: %d\n", s.StartParts)
		}
		b.WriteString("    timeline:\n")
		for _, e := range s.Events {
			fmt.Fprintf(&b, "      - {at: %v", e.At)
			if e.State != 0 {
				fmt.Fprintf(&b, ", state: %v", e.State)
			}
			if e.Alarm != 0 {
				fmt.Fprintf(&b, ", alarm: %d", e.Alarm)
			}
			if e.Cycle != 0 {
				fmt.Fprintf(&b, ", cycle: %v", e.Cycle)
			}
			if e.IdealCycle != 0 {
				fmt.Fprintf(&b, ", ideal_cycle: %v", e.IdealCycle)
			}
			if e.Reset {
				b.WriteString(", reset: true")
			}
			b.WriteString("}\n")
		}
	}
	return []byte(b.String())
}
