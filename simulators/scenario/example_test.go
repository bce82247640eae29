package scenario_test

import (
	"fmt"
	"time"

	"github.com/floorlink/floorlink/simulators/line"
	"github.com/floorlink/floorlink/simulators/scenario"
)

// A scripted machine stepped by hand: 10 s running, 5 s down, then running again; parts come
// from the running time alone, the partial part carried over the stop.
func ExampleParse() {
	sc, err := scenario.Parse("example.yaml", []byte(`
machines:
  - machine: 1
    cycle: 4s
    ideal_cycle: 3s
    timeline:
      - {at: 0s, state: running}
      - {at: 10s, state: down, alarm: 101}
      - {at: 15s, state: running}
`))
	if err != nil {
		panic(err)
	}
	l, err := line.New(line.Config{Step: time.Second, Scripts: sc.Scripts})
	if err != nil {
		panic(err)
	}
	for range 20 {
		l.Step()
		if m := l.Snapshot(1); l.Tick()%5 == 0 {
			fmt.Printf("%2d s: %-7v parts %d, alarm %d\n", l.Tick(), m.State, m.PartsTotal, m.AlarmCode)
		}
	}
	// Output:
	//  5 s: running parts 1, alarm 0
	// 10 s: down    parts 2, alarm 101
	// 15 s: running parts 2, alarm 0
	// 20 s: running parts 3, alarm 0
}

// The clock plcsim --clock-start/--clock-epoch/--speed/--step serves, seen from another process.
func ExampleClock() {
	c := scenario.Clock{
		Start: time.Date(2026, 3, 2, 6, 0, 0, 0, time.FixedZone("KST", 9*3600)),
		Epoch: time.Date(2026, 11, 25, 11, 0, 0, 0, time.UTC),
		Speed: 60,
		Step:  100 * time.Millisecond,
	}
	k := c.Tick(c.Epoch.Add(3 * time.Minute)) // three real minutes after the epoch
	fmt.Println(k, c.Sim(k).Format("15:04:05 MST"))
	// Output: 108000 09:00:00 KST
}
