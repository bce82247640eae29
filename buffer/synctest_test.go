package buffer

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// Timers (commit interval, backoff, deadlines) are tested in a synctest bubble, on fake time. The
// bbolt file is real: file I/O never blocks durably, so it only delays synctest.Wait.

func TestBuffer_Run_CommitInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = 2 * time.Second
		b := openBuffer(t, "", Options{CommitInterval: interval})
		runBuffer(t, b)

		start := time.Now()
		if err := b.Append([]byte("first")); err != nil {
			t.Fatal(err)
		}
		flush(t, b)
		if d := time.Since(start); d != 0 {
			t.Errorf("first commit after %v, want at once", d)
		}

		// Appends during the interval wait for its end and go into one commit.
		for range 3 {
			if err := b.Append([]byte("next")); err != nil {
				t.Fatal(err)
			}
			time.Sleep(interval / 4) // fake time: lets the interval run, not a wait for a result
		}
		if s := b.Stats(); s.Commits != 1 || s.QueueLen != 3 {
			t.Errorf("within the interval: %d commits, %d queued; want 1 and 3", s.Commits, s.QueueLen)
		}
		flush(t, b)
		if d := time.Since(start); d != interval {
			t.Errorf("second commit after %v, want %v", d, interval)
		}
		if s := b.Stats(); s.Commits != 2 || s.Committed != 4 {
			t.Errorf("after the interval: %+v, want 2 commits of 4 payloads", s)
		}
	})
}

func TestBuffer_Run_CommitFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := openBuffer(t, "", Options{})
		var fail atomic.Int32
		fail.Store(4)
		b.beforeCommit = func() error {
			if fail.Add(-1) >= 0 {
				return errors.New("injected: no space left on device")
			}
			return nil
		}
		runBuffer(t, b)

		start := time.Now()
		for i := range uint64(5) {
			if err := b.Append(payload(i)); err != nil {
				t.Fatal(err)
			}
		}
		flushed := make(chan error, 1)
		go func() { flushed <- b.Flush(context.Background()) }()

		synctest.Wait()
		select {
		case err := <-flushed:
			t.Fatalf("Flush returned %v while commits fail", err)
		default:
		}
		if s := b.Stats(); s.CommitFailures != 1 || s.QueueLen != 5 || s.Head != 0 {
			t.Errorf("after the first failure: %+v", s)
		}

		if err := <-flushed; err != nil {
			t.Fatalf("Flush: %v", err)
		}
		// Backoff 50, 100, 200, 400 ms.
		if d, want := time.Since(start), 750*time.Millisecond; d != want {
			t.Errorf("committed after %v, want %v", d, want)
		}
		s := b.Stats()
		if s.CommitFailures != 4 || s.Commits != 1 || s.Committed != 5 || s.Head != 5 {
			t.Errorf("after recovery: %+v", s)
		}
		for i, e := range readAll(t, b, 0) {
			if e.seq != uint64(i+1) || string(e.payload) != string(payload(uint64(i))) {
				t.Errorf("entry %d: seq %d", i, e.seq)
			}
		}
	})
}

func TestBuffer_Run_BackoffCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := openBuffer(t, "", Options{})
		var failing atomic.Bool
		failing.Store(true)
		b.beforeCommit = func() error {
			if failing.Load() {
				return errors.New("injected")
			}
			return nil
		}
		runBuffer(t, b)
		if err := b.Append([]byte("x")); err != nil {
			t.Fatal(err)
		}
		// 50 ms doubling: 50…3200 ms is 6350 ms over 7 retries, then 5 s each.
		time.Sleep(6350*time.Millisecond + 3*maxBackoff)
		synctest.Wait()
		if got, want := b.Stats().CommitFailures, uint64(1+7+3); got != want {
			t.Errorf("%d failures, want %d", got, want)
		}
		failing.Store(false)
		flush(t, b)
	})
}

func TestBuffer_Run_DrainGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := openBuffer(t, "", Options{})
		b.beforeCommit = func() error { return errors.New("injected") }
		for range 3 {
			if err := b.Append([]byte("x")); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := b.Run(ctx)
		if err == nil || errors.Is(err, ErrClosed) {
			t.Fatalf("Run = %v, want an error saying what was lost", err)
		}
		t.Log(err)
		if s := b.Stats(); s.CommitFailures != drainAttempts || s.QueueLen != 3 {
			t.Errorf("Stats %+v", s)
		}
	})
}

func TestBuffer_Flush_Deadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := openBuffer(t, "", Options{})
		if err := b.Flush(context.Background()); err != nil {
			t.Errorf("Flush with nothing appended: %v", err)
		}
		if err := b.Append([]byte("x")); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start := time.Now()
		if err := b.Flush(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Flush without a writer = %v, want DeadlineExceeded", err)
		}
		if d := time.Since(start); d != time.Second {
			t.Errorf("Flush returned after %v, want 1s", d)
		}
		runBuffer(t, b)
		flush(t, b)
	})
}

func TestBuffer_Wait_Deadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := openBuffer(t, "", Options{})
		runBuffer(t, b)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start := time.Now()
		if err := b.Wait(ctx, 0); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Wait with nothing committed = %v, want DeadlineExceeded", err)
		}
		if d := time.Since(start); d != time.Second {
			t.Errorf("Wait returned after %v, want 1s", d)
		}
	})
}
