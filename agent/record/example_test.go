package record_test

import (
	"fmt"
	"time"

	"github.com/floorlink/floorlink/agent/record"
)

func Example() {
	rec := record.Record{
		Kind:   record.KindTelemetry,
		Source: "press-1",
		Time:   time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC),
		Fields: []record.Field{
			record.FloatField("temperature", 71.5),
			record.UintField("parts", 4711),
			record.NullField("pressure", record.Bad, "timeout"),
		},
	}
	// Encode into a buffer that the caller reuses from record to record.
	buf := make([]byte, 0, 512)
	buf, err := rec.AppendBinary(buf[:0])
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%d bytes, format version %d\n", len(buf), buf[0])

	// Decode with one Decoder and one Record per goroutine, reused from record to record.
	var d record.Decoder
	var got record.Record
	if err := d.Decode(buf, &got); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(got.Kind, got.Source, got.Time.Format(time.RFC3339))
	for _, f := range got.Fields {
		switch f.Kind {
		case record.Float:
			fmt.Printf("%s = %v\n", f.Name, f.FloatValue())
		case record.Uint:
			fmt.Printf("%s = %d\n", f.Name, f.Bits)
		case record.Null:
			fmt.Printf("%s: %s, %s\n", f.Name, f.Quality, f.Reason)
		}
	}
	// Output:
	// 68 bytes, format version 1
	// telemetry press-1 2026-11-25T08:00:00Z
	// temperature = 71.5
	// parts = 4711
	// pressure: bad, timeout
}
