package modbus

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// TestServer_Respond_NoAllocs backs the claim on scratch: answering a read allocates nothing.
func TestServer_Respond_NoAllocs(t *testing.T) {
	s := fuzzServer(t)
	var sc scratch
	out := make([]byte, 0, maxPDU)
	ctx := context.Background()
	for _, pdu := range [][]byte{
		{3, 0, 0, 0, 20},  // holding
		{4, 0, 0, 0, 10},  // input
		{1, 0, 0, 0, 16},  // coils
		{3, 0, 100, 0, 1}, // exception
	} {
		allocs := testing.AllocsPerRun(100, func() {
			if _, _, err := s.respond(ctx, 1, pdu, out[:0], &sc); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("respond(% x) allocates %v times, want 0", pdu, allocs)
		}
	}
}

func BenchmarkServer_Respond(b *testing.B) {
	s := fuzzServer(b)
	var sc scratch
	out := make([]byte, 0, maxPDU)
	ctx := context.Background()
	pdu := []byte{3, 0, 0, 0, 20}
	b.ReportAllocs()
	for b.Loop() {
		out, _, _ = s.respond(ctx, 1, pdu, out[:0], &sc)
	}
}

func TestExceptionOf(t *testing.T) {
	tests := []struct {
		err  error
		want Exception
	}{
		{IllegalDataAddress, IllegalDataAddress},
		{fmt.Errorf("read unit 3: %w", GatewayPathUnavailable), GatewayPathUnavailable},
		{errors.New("disk on fire"), ServerDeviceFailure},
		{Exception(0), ServerDeviceFailure},
	}
	for _, tt := range tests {
		if got := exceptionOf(tt.err); got != tt.want {
			t.Errorf("exceptionOf(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}
