package line_test

import (
	"fmt"

	"github.com/floorlink/floorlink/simulators/line"
)

// A line stepped by hand: one simulated minute of the default line, machine by machine.
func Example() {
	l, err := line.New(line.Config{Seed: 1})
	if err != nil {
		panic(err)
	}
	for range 600 { // 600 ticks of 100 ms
		l.Step()
	}
	for k := 1; k <= l.Machines(); k++ {
		m := l.Snapshot(k)
		fmt.Printf("machine %d tick %d: %v, %d parts (%d good), ideal %d ms\n",
			k, m.Tick, m.State, m.PartsTotal, m.GoodTotal, m.IdealCycleTimeMs)
	}
	// Output:
	// machine 1 tick 600: blocked, 15 parts (14 good), ideal 2000 ms
	// machine 2 tick 600: blocked, 9 parts (8 good), ideal 2500 ms
	// machine 3 tick 600: setup, 3 parts (3 good), ideal 1800 ms
}
