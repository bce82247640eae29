package publish

import (
	"testing"
	"time"
)

// TestBucket paces messages at the rate over simulated time: no more than rate×elapsed+burst
// leave, and the wait it asks for is the time to the next token.
func TestBucket(t *testing.T) {
	b := newBucket(100) // burst 10
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	sent := 0
	for step := 0; step < 1000; step++ { // 10 s in 10 ms steps
		n, wait := b.take(now, 64)
		if n == 0 && (wait <= 0 || wait > 10*time.Millisecond) {
			t.Fatalf("at %v: wait %v for the next token at 100/s", step, wait)
		}
		b.spend(n)
		sent += n
		now = now.Add(10 * time.Millisecond)
	}
	if sent < 990 || sent > 1010 {
		t.Fatalf("sent %d in 10 s at 100/s", sent)
	}
	if n, _ := newBucket(0).take(now, 64); n != 64 {
		t.Fatalf("rate 0 (no limit) allowed %d of 64", n)
	}
	// Debt from the parts of a split record is paid back before more leave.
	b = newBucket(10)
	b.take(now, 1)
	b.spend(20)
	if n, wait := b.take(now.Add(time.Second), 64); n != 0 || wait <= 0 {
		t.Fatalf("after a debt of 19 and 1 s at 10/s: allowed %d, wait %v", n, wait)
	}
}
