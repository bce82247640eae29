package kpi_test

import (
	"fmt"
	"time"

	"github.com/floorlink/floorlink/agent/kpi"
	"github.com/floorlink/floorlink/agent/record"
	"github.com/floorlink/floorlink/drivers"
)

// A press runs a 15-minute window with a 2 s ideal cycle; its PLC is polled every 10 s. The
// machine makes 4 parts per poll (a 2.5 s cycle) and is down for the last 3 minutes.
func Example() {
	dev := drivers.Device{Name: "press-1", PollInterval: 10 * time.Second, Tags: []drivers.Tag{
		{Name: "state", Type: drivers.TypeUint16}, {Name: "parts", Type: drivers.TypeUint32}, {Name: "good", Type: drivers.TypeUint32},
	}}
	eng, err := kpi.New([]kpi.Asset{{
		Name:       "press-1",
		State:      kpi.StateSource{Tag: kpi.TagRef{Device: "press-1", Tag: "state"}, Map: map[int64]kpi.State{1: kpi.StateRunning, 4: kpi.StateDown}},
		Counters:   kpi.Counters{Total: kpi.TagRef{Device: "press-1", Tag: "parts"}, Good: kpi.TagRef{Device: "press-1", Tag: "good"}, Bits: 32},
		IdealCycle: kpi.IdealCycle{Value: 2 * time.Second},
		Windows:    []kpi.Window{{Kind: kpi.Tumbling, Every: 15 * time.Minute}},
	}}, []drivers.Device{dev}, kpi.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	start := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	var parts uint64
	var rec record.Record
	for i := 0; i <= 91; i++ {
		at := start.Add(time.Duration(i) * 10 * time.Second)
		state := uint64(1)
		if at.Sub(start) >= 12*time.Minute {
			state = 4
		}
		eng.Observe(&drivers.Batch{Device: "press-1", ReadTime: at, Samples: []drivers.Sample{
			{Tag: 0, Value: drivers.UintValue(state)},
			{Tag: 1, Value: drivers.UintValue(parts)},
			{Tag: 2, Value: drivers.UintValue(parts)},
		}})
		if state == 1 {
			parts += 4
		}
		for eng.Next(at, &rec) {
			for _, f := range rec.Fields {
				switch f.Name {
				case kpi.FieldWindowStart, kpi.FieldProduced, kpi.FieldAvailability, kpi.FieldPerformance, kpi.FieldOEE:
					fmt.Printf("%s=%v ", f.Name, value(f))
				}
			}
			fmt.Println("end=" + rec.Time.Format(time.Kitchen))
			snapshot := eng.Snapshot(nil) // the agent commits it with the record
			_ = snapshot
		}
	}
	// Output:
	// window_start=2026-03-02T10:00:00.000Z produced=288 availability=0.8 performance=0.8 oee=0.64 end=10:15AM
}

func value(f record.Field) any {
	switch f.Kind {
	case record.String:
		return f.Str
	case record.Int:
		return f.IntValue()
	case record.Float:
		return fmt.Sprintf("%.4g", f.FloatValue())
	}
	return nil
}
