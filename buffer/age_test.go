package buffer

import (
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeClock is a wall clock and a monotonic clock that tests move: together (time passing) or
// the wall clock alone (a jump).
type fakeClock struct {
	mu   sync.Mutex
	wall time.Time
	mono time.Duration
}

func newFakeClock() *fakeClock {
	return &fakeClock{wall: time.Date(2026, 5, 6, 7, 0, 0, 0, time.UTC), mono: time.Hour}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.wall
}

func (c *fakeClock) Mono() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mono
}

// Advance lets d pass on both clocks.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.wall = c.wall.Add(d)
	c.mono += d
	c.mu.Unlock()
}

// Step moves the wall clock alone.
func (c *fakeClock) Step(d time.Duration) {
	c.mu.Lock()
	c.wall = c.wall.Add(d)
	c.mu.Unlock()
}

// options sets the clocks in opts.
func (c *fakeClock) options(opts Options) Options {
	opts.Now, opts.mono = c.Now, c.Mono
	return opts
}

// jumps collects what OnClockJump reports.
type jumps struct {
	mu sync.Mutex
	j  []ClockJump
}

func (j *jumps) add(x ClockJump) {
	j.mu.Lock()
	j.j = append(j.j, x)
	j.mu.Unlock()
}

func (j *jumps) all() []ClockJump {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]ClockJump(nil), j.j...)
}

// wait waits for n jumps: callbacks run just after the commit that Flush waits for.
func (j *jumps) wait(t testing.TB, n int) []ClockJump {
	t.Helper()
	waitFor(t, 5*time.Second, func() error {
		if got := len(j.all()); got < n {
			return fmt.Errorf("%d clock jumps reported, want %d", got, n)
		}
		return nil
	})
	return j.all()
}

// wait waits for n drops, like jumps.wait.
func (d *drops) wait(t testing.TB, n int) []Drop {
	t.Helper()
	waitFor(t, 5*time.Second, func() error {
		if got := len(d.all()); got < n {
			return fmt.Errorf("%d drops reported, want %d", got, n)
		}
		return nil
	})
	return d.all()
}

// appendN appends n payloads numbered from first and waits for their commit.
func appendN(t testing.TB, b *Buffer, first uint64, n int) {
	t.Helper()
	for i := range uint64(n) {
		if err := b.Append(payload(first + i)); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, b)
}

func TestBuffer_MaxAge(t *testing.T) {
	clock := newFakeClock()
	var got drops
	b := openBuffer(t, "", clock.options(Options{MaxAge: time.Hour, OnDrop: got.add}))
	runBuffer(t, b)

	appendN(t, b, 1, 10)
	clock.Advance(30 * time.Minute)
	appendN(t, b, 11, 10)
	clock.Advance(30 * time.Minute) // the first 10 are exactly an hour old: not older
	appendN(t, b, 21, 1)
	if d := got.all(); len(d) != 0 {
		t.Fatalf("drops at exactly MaxAge: %+v", d)
	}
	clock.Advance(time.Second)
	appendN(t, b, 22, 1) // a commit checks the age
	want := []Drop{{Reason: DropMaxAge, First: 1, Last: 10, Count: 10, Bytes: 10 * 200}}
	if diff := cmp.Diff(want, got.wait(t, 1)); diff != "" {
		t.Fatalf("drops (-want +got):\n%s", diff)
	}
	s := b.Stats()
	if s.Cursor != 10 || s.DroppedMaxAge != 10 || s.Dropped != 10 || s.DroppedBytes != 2000 || s.Entries != 12 {
		t.Errorf("Stats: %+v", s)
	}
	if s.OldestAge != 30*time.Minute+time.Second {
		t.Errorf("OldestAge %v, want 30m1s", s.OldestAge)
	}
	if got := readAll(t, b, 0); len(got) != 12 || got[0].seq != 11 {
		t.Errorf("entries after the drop: %d from %d, want 12 from 11", len(got), got[0].seq)
	}
}

// TestBuffer_MaxAge_Idle: with no commit coming, Run drops by age on its own, at most
// MaxAge/10 (at least a second) late.
func TestBuffer_MaxAge_Idle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var got drops
		b := openBuffer(t, "", Options{MaxAge: 20 * time.Second, OnDrop: got.add})
		runBuffer(t, b)
		appendN(t, b, 1, 5)
		time.Sleep(15 * time.Second) // fake time: lets the clock run, not a wait for a result
		appendN(t, b, 6, 5)
		time.Sleep(5*time.Second + 2*time.Second)
		synctest.Wait()
		want := []Drop{{Reason: DropMaxAge, First: 1, Last: 5, Count: 5, Bytes: 1000}}
		if diff := cmp.Diff(want, got.all()); diff != "" { // synctest.Wait: Run is idle again
			t.Fatalf("drops (-want +got):\n%s", diff)
		}
		time.Sleep(15 * time.Second)
		synctest.Wait()
		if s := b.Stats(); s.Entries != 0 || s.DroppedMaxAge != 10 || s.Cursor != 10 {
			t.Errorf("Stats: %+v", s)
		}
	})
}

// TestBuffer_MaxAge_ClockJumpForward is issue 4's clock acceptance for the buffer: a 2-day
// forward step of the wall clock drops nothing by age, is reported, and still holds after a
// restart; entries appended after the jump age normally once the older ones are gone.
func TestBuffer_MaxAge_ClockJumpForward(t *testing.T) {
	clock := newFakeClock()
	var gotDrops drops
	var gotJumps jumps
	path := tempPath(t)
	opts := clock.options(Options{MaxAge: time.Hour, OnDrop: gotDrops.add, OnClockJump: gotJumps.add})
	b := openBuffer(t, path, opts)
	stop := runBuffer(t, b)
	appendN(t, b, 1, 10)
	clock.Advance(time.Second)
	clock.Step(48 * time.Hour)
	appendN(t, b, 11, 1) // stamped after the jump; the commit finds the jump
	want := []ClockJump{{Wall: 48*time.Hour + time.Second, Monotonic: time.Second, AgeFloor: 11}}
	if diff := cmp.Diff(want, gotJumps.wait(t, 1)); diff != "" {
		t.Fatalf("clock jumps (-want +got):\n%s", diff)
	}
	if j := gotJumps.all()[0].Jump(); j != 48*time.Hour {
		t.Errorf("Jump() = %v, want 48h", j)
	}
	clock.Advance(10 * time.Minute)
	appendN(t, b, 12, 1)
	if d := gotDrops.all(); len(d) != 0 {
		t.Fatalf("dropped across the jump: %+v", d)
	}
	if s := b.Stats(); s.ClockJumps != 1 || s.AgeFloor != 11 || s.Entries != 12 {
		t.Errorf("Stats: %+v", s)
	}

	// A restart knows no monotonic time: the floor in the file keeps the exemption.
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	clock.Advance(30 * time.Minute)
	b = openBuffer(t, path, opts)
	runBuffer(t, b)
	clock.Advance(50 * time.Minute) // entry 12 is 80 minutes old, but behind exempt ones
	appendN(t, b, 13, 1)
	if d := gotDrops.all(); len(d) != 0 {
		t.Fatalf("dropped across the jump after a restart: %+v", d)
	}
	if s := b.Stats(); s.AgeFloor != 11 || s.ClockJumps != 0 || s.Entries != 13 {
		t.Errorf("Stats after restart: %+v", s)
	}
	// Once the exempt entries are acknowledged, the age limit applies again.
	if err := b.Ack(11); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	appendN(t, b, 14, 1)
	want2 := []Drop{{Reason: DropMaxAge, First: 12, Last: 12, Count: 1, Bytes: 200}}
	if diff := cmp.Diff(want2, gotDrops.wait(t, 1)); diff != "" {
		t.Errorf("drops after the exempt entries went (-want +got):\n%s", diff)
	}
}

// TestBuffer_MaxAge_ClockJumpBack: the wall clock stepping back a day while running, and a
// file whose newest entry is stamped in the future at Open, are jumps: reported, nothing
// dropped by age.
func TestBuffer_MaxAge_ClockJumpBack(t *testing.T) {
	t.Run("running", func(t *testing.T) {
		clock := newFakeClock()
		var gotDrops drops
		var gotJumps jumps
		b := openBuffer(t, "", clock.options(Options{MaxAge: time.Hour, OnDrop: gotDrops.add, OnClockJump: gotJumps.add}))
		runBuffer(t, b)
		appendN(t, b, 1, 5)
		clock.Advance(time.Minute)
		clock.Step(-24 * time.Hour)
		appendN(t, b, 6, 1) // alone in the queue when the commit finds the jump
		appendN(t, b, 7, 4)
		clock.Advance(90 * time.Minute) // entries 1…10 are older than MaxAge, 1…6 exempt
		appendN(t, b, 11, 1)
		want := []ClockJump{{Wall: -24*time.Hour + time.Minute, Monotonic: time.Minute, AgeFloor: 6}}
		if diff := cmp.Diff(want, gotJumps.wait(t, 1)); diff != "" {
			t.Fatalf("clock jumps (-want +got):\n%s", diff)
		}
		// FIFO: the exempt entries at the front hold back the age limit for those behind.
		if d := gotDrops.all(); len(d) != 0 {
			t.Errorf("dropped across the jump: %+v", d)
		}
	})
	t.Run("at open", func(t *testing.T) {
		clock := newFakeClock()
		path := tempPath(t)
		b := openBuffer(t, path, clock.options(Options{}))
		stop := runBuffer(t, b)
		appendN(t, b, 1, 5)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}

		clock.Step(-24 * time.Hour)
		var gotDrops drops
		var gotJumps jumps
		b = openBuffer(t, path, clock.options(Options{MaxAge: time.Hour, OnDrop: gotDrops.add, OnClockJump: gotJumps.add}))
		if s := b.Stats(); s.AgeFloor != 5 || s.ClockJumps != 1 {
			t.Errorf("Stats after Open: %+v", s)
		}
		runBuffer(t, b)
		clock.Advance(2 * time.Hour)
		appendN(t, b, 6, 1)
		want := []ClockJump{{Wall: -24 * time.Hour, AgeFloor: 5}}
		if diff := cmp.Diff(want, gotJumps.wait(t, 1)); diff != "" {
			t.Errorf("clock jumps (-want +got):\n%s", diff)
		}
		if d := gotDrops.all(); len(d) != 0 {
			t.Errorf("dropped across the jump: %+v", d)
		}
	})
}

// TestBuffer_MaxAge_NoJumpWithinThreshold: NTP slewing and scheduling make the two clocks
// drift a little; that is no jump.
func TestBuffer_MaxAge_NoJumpWithinThreshold(t *testing.T) {
	clock := newFakeClock()
	var gotJumps jumps
	b := openBuffer(t, "", clock.options(Options{OnClockJump: gotJumps.add}))
	runBuffer(t, b)
	appendN(t, b, 1, 1)
	clock.Advance(time.Hour)
	clock.Step(jumpThreshold + time.Hour/1000) // within 2 s + 0.1 %
	appendN(t, b, 2, 1)
	clock.Step(-jumpThreshold)
	appendN(t, b, 3, 1)
	if j := gotJumps.all(); len(j) != 0 {
		t.Errorf("jumps reported: %+v", j)
	}
}
