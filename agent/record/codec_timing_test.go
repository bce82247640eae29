package record

import (
	"fmt"
	"testing"
)

func BenchmarkRecord_AppendBinary(b *testing.B) {
	for _, n := range []int{10, 100} {
		b.Run(fmt.Sprintf("fields=%d", n), func(b *testing.B) {
			r := telemetryRecord(n)
			buf, err := r.AppendBinary(nil)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			for b.Loop() {
				buf, err = r.AppendBinary(buf[:0])
			}
			if err != nil {
				b.Fatal(err)
			}
		})
	}
}

func BenchmarkDecoder_Decode(b *testing.B) {
	for _, n := range []int{10, 100} {
		b.Run(fmt.Sprintf("fields=%d", n), func(b *testing.B) {
			rec := telemetryRecord(n)
			data, err := rec.AppendBinary(nil)
			if err != nil {
				b.Fatal(err)
			}
			var d Decoder
			var r Record
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				err = d.Decode(data, &r)
			}
			if err != nil {
				b.Fatal(err)
			}
		})
	}
}
