package verify_test

import (
	"fmt"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	topic = "floorlink/v1/s/a/l/press/telemetry"
	gw    = "gw1"
	ep1   = "0123456789abcdef"
	ep2   = "fedcba9876543210"
)

var t0 = time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)

// record returns a record message in the contract's shape (docs/mqtt.md) whose values are
// values (a JSON object), or {"n":seq} when values is "".
func record(gateway, epoch string, seq uint64, historical bool, values string) []byte {
	if values == "" {
		values = fmt.Sprintf(`{"n":%d}`, seq)
	}
	return fmt.Appendf(nil, `{"gateway":%q,"epoch":%q,"seq":%d,"ts":"2026-11-25T08:30:15.123Z","historical":%t,"values":%s}`,
		gateway, epoch, seq, historical, values)
}

// dropEvent returns the event record, with seq seq, announcing that first..last were dropped.
func dropEvent(gateway, epoch string, seq, first, last uint64, reason string) []byte {
	return record(gateway, epoch, seq, false, fmt.Sprintf(`{"event":"drop","first_seq":%d,"last_seq":%d,"count":%d,"reason":%q}`,
		first, last, last-first+1, reason))
}

// waitFor polls fn until it returns nil, and fails the test with fn's last error after
// timeout.
func waitFor(t testing.TB, timeout time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", timeout, err)
		}
		<-time.After(20 * time.Millisecond)
	}
}
