package buffer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"
)

func TestBuffer_RoundTrip(t *testing.T) {
	b := openBuffer(t, "", Options{})
	runBuffer(t, b)

	for i := range uint64(10) {
		if err := b.Append(payload(i)); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
	}
	flush(t, b)

	got := readAll(t, b, 0)
	if len(got) != 10 {
		t.Fatalf("ReadAfter(0) got %d entries, want 10", len(got))
	}
	for i, e := range got {
		if e.seq != uint64(i+1) || !bytes.Equal(e.payload, payload(uint64(i))) {
			t.Errorf("entry %d: got seq %d payload %x…, want seq %d payload %x…", i, e.seq, e.payload[:8], i+1, payload(uint64(i))[:8])
		}
	}
	if h := b.Head(); h != 10 {
		t.Errorf("Head() = %d, want 10", h)
	}

	var seqs []uint64
	err := b.ReadAfter(3, 2, func(seq uint64, _ []byte) error { seqs = append(seqs, seq); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]uint64{4, 5}, seqs); diff != "" {
		t.Errorf("ReadAfter(3, 2) seqs (-want +got):\n%s", diff)
	}

	if err := b.Ack(4); err != nil {
		t.Fatalf("Ack(4): %v", err)
	}
	if c := b.Cursor(); c != 4 {
		t.Errorf("Cursor() = %d, want 4", c)
	}
	got = readAll(t, b, 0)
	if len(got) != 6 || got[0].seq != 5 {
		t.Errorf("after Ack(4): got %d entries from %d, want 6 from 5", len(got), got[0].seq)
	}
	s := b.Stats()
	want := Stats{Head: 10, Cursor: 4, Entries: 6, FileBytes: s.FileBytes, Bytes: 6 * 200, OldestAge: s.OldestAge,
		Appended: 10, Committed: 10, Commits: s.Commits}
	if diff := cmp.Diff(want, s); diff != "" {
		t.Errorf("Stats (-want +got):\n%s", diff)
	}
	if s.FileBytes <= 0 || s.Commits < 1 || s.Commits > 10 || s.OldestAge <= 0 {
		t.Errorf("Stats: FileBytes %d, Commits %d, OldestAge %v; want > 0, 1…10 and > 0", s.FileBytes, s.Commits, s.OldestAge)
	}
}

func TestBuffer_ReadAfter(t *testing.T) {
	b := openBuffer(t, "", Options{})
	runBuffer(t, b)
	for i := range uint64(5) {
		if err := b.Append(payload(i)); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, b)

	t.Run("fn error stops and is returned", func(t *testing.T) {
		stop := errors.New("stop")
		calls := 0
		err := b.ReadAfter(0, 10, func(uint64, []byte) error { calls++; return stop })
		if err != stop || calls != 1 {
			t.Errorf("got error %v after %d calls, want %v after 1", err, calls, stop)
		}
	})
	t.Run("after head", func(t *testing.T) {
		if got := readAll(t, b, 5); len(got) != 0 {
			t.Errorf("got %d entries after head, want 0", len(got))
		}
		if got := readAll(t, b, ^uint64(0)); len(got) != 0 {
			t.Errorf("got %d entries after max uint64, want 0", len(got))
		}
	})
	t.Run("max below 1", func(t *testing.T) {
		if err := b.ReadAfter(0, 0, func(uint64, []byte) error { return nil }); err == nil {
			t.Error("ReadAfter with max 0: got nil error")
		}
	})
	t.Run("before cursor", func(t *testing.T) {
		if err := b.Ack(2); err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, b, 0); len(got) != 3 || got[0].seq != 3 {
			t.Errorf("got %d entries, want 3 from seq 3", len(got))
		}
	})
}

func TestBuffer_Append_CopiesPayload(t *testing.T) {
	b := openBuffer(t, "", Options{})
	p := []byte("original")
	if err := b.Append(p); err != nil {
		t.Fatal(err)
	}
	copy(p, "mutated!")
	runBuffer(t, b)
	flush(t, b)
	if got := readAll(t, b, 0); len(got) != 1 || string(got[0].payload) != "original" {
		t.Errorf("got %v, want one entry with payload original", got)
	}
}

func TestBuffer_Append_Stamp(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 8, time.UTC)
	b := openBuffer(t, "", Options{Now: func() time.Time { return at }})
	runBuffer(t, b)
	if err := b.Append([]byte("x")); err != nil {
		t.Fatal(err)
	}
	flush(t, b)
	var stamp int64
	err := b.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketEntries).Get(be64(1))
		stamp = int64(beUint64(v))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if stamp != at.UnixNano() {
		t.Errorf("stored stamp %d, want %d", stamp, at.UnixNano())
	}
}

func TestBuffer_Reopen(t *testing.T) {
	path := tempPath(t)
	b := openBuffer(t, path, Options{})
	stop := runBuffer(t, b)
	for i := range uint64(5) {
		if err := b.Append(payload(i)); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, b)
	if err := b.Ack(5); err != nil {
		t.Fatal(err)
	}
	epoch := b.Epoch()
	if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(epoch) {
		t.Errorf("Epoch() = %q, want 16 hex characters", epoch)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b = openBuffer(t, path, Options{})
	if b.Epoch() != epoch {
		t.Errorf("Epoch() after reopen = %q, want %q", b.Epoch(), epoch)
	}
	if b.Head() != 5 || b.Cursor() != 5 {
		t.Errorf("after reopen Head %d Cursor %d, want 5 and 5", b.Head(), b.Cursor())
	}
	runBuffer(t, b)
	for i := range uint64(3) {
		if err := b.Append(payload(100 + i)); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, b)
	var seqs []uint64
	for _, e := range readAll(t, b, 0) {
		seqs = append(seqs, e.seq)
	}
	if diff := cmp.Diff([]uint64{6, 7, 8}, seqs); diff != "" {
		t.Errorf("seqs after reopen (-want +got):\n%s", diff)
	}

	if other := openBuffer(t, "", Options{}); other.Epoch() == epoch {
		t.Errorf("two files share the epoch %s", epoch)
	}
}

func TestBuffer_Ack(t *testing.T) {
	path := tempPath(t)
	b := openBuffer(t, path, Options{})
	runBuffer(t, b)
	if err := b.Ack(0); err != nil {
		t.Errorf("Ack(0) on an empty buffer: %v", err)
	}
	if err := b.Ack(1); err == nil {
		t.Error("Ack(1) on an empty buffer: got nil error")
	}
	for i := range uint64(10) {
		if err := b.Append(payload(i)); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, b)

	if err := b.Ack(11); err == nil {
		t.Error("Ack(11) beyond head 10: got nil error")
	}
	if err := b.Ack(6); err != nil {
		t.Fatal(err)
	}
	if err := b.Ack(3); err != nil {
		t.Errorf("Ack(3) behind the cursor: %v", err)
	}
	if c := b.Cursor(); c != 6 {
		t.Errorf("Cursor() after Ack(6), Ack(3) = %d, want 6", c)
	}
	if s := b.Stats(); s.Entries != 4 {
		t.Errorf("Stats().Entries = %d, want 4", s.Entries)
	}
	var stored int
	err := b.db.View(func(tx *bolt.Tx) error {
		stored = tx.Bucket(bucketEntries).Stats().KeyN
		return nil
	})
	if err != nil || stored != 4 {
		t.Errorf("entries in the file: %d (%v), want 4", stored, err)
	}
	if err := b.Ack(10); err != nil {
		t.Fatal(err)
	}
	if s := b.Stats(); s.Entries != 0 || s.Head != 10 || s.Cursor != 10 {
		t.Errorf("after acking all: Stats %+v", s)
	}
}

func TestBuffer_State(t *testing.T) {
	path := tempPath(t)
	b := openBuffer(t, path, Options{})

	if v, err := b.State("absent"); v != nil || err != nil {
		t.Errorf("State(absent) = %q, %v; want nil, nil", v, err)
	}
	val := []byte("one")
	if err := b.SetState("k", val); err != nil {
		t.Fatal(err)
	}
	val[0] = 'X'
	got, err := b.State("k")
	if err != nil || string(got) != "one" {
		t.Errorf("State(k) = %q, %v; want one", got, err)
	}
	got[0] = 'Y' // a copy: must not reach the file
	if got, _ := b.State("k"); string(got) != "one" {
		t.Errorf("State(k) after modifying the returned slice = %q, want one", got)
	}
	if err := b.SetState("empty", []byte{}); err != nil {
		t.Fatal(err)
	}
	if got, err := b.State("empty"); got == nil || len(got) != 0 || err != nil {
		t.Errorf("State(empty) = %#v, %v; want empty non-nil", got, err)
	}
	if err := b.SetState("", []byte("x")); err == nil {
		t.Error("SetState with an empty key: got nil error")
	}

	runBuffer(t, b)
	if err := b.Append([]byte("p1"), State{"k", []byte("two")}, State{"empty", nil}, State{"new", []byte("n")}); err != nil {
		t.Fatal(err)
	}
	if err := b.Append([]byte("p2"), State{Key: ""}); err == nil {
		t.Error("Append with an empty state key: got nil error")
	}
	flush(t, b)
	for key, want := range map[string]string{"k": "two", "new": "n"} {
		if got, err := b.State(key); err != nil || string(got) != want {
			t.Errorf("State(%s) = %q, %v; want %q", key, got, err, want)
		}
	}
	if got, err := b.State("empty"); got != nil || err != nil {
		t.Errorf("State(empty) after Append deleted it = %q, %v; want nil", got, err)
	}
	if err := b.SetState("k", nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.State("k"); got != nil {
		t.Errorf("State(k) after SetState(k, nil) = %q, want nil", got)
	}
}

// TestBuffer_Append_StateAtomic appends with a state naming the entry's payload, closes the
// buffer under a running writer (a crash-like stop: what is queued is lost), reopens and checks
// that the state always names the last stored entry. crash_test.go does the same with SIGKILL.
func TestBuffer_Append_StateAtomic(t *testing.T) {
	path := tempPath(t)
	for round := range 5 {
		b, err := Open(path, Options{MaxBatch: 7}, testLog(t))
		if err != nil {
			t.Fatal(err)
		}
		checkStateAgrees(t, b)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- b.Run(ctx) }()
		next := b.Head() + 1
		for range 200 + 50*round {
			p := payload(next)
			if err := b.Append(p, State{"last", p[:8]}); err != nil {
				t.Fatal(err)
			}
			next++
		}
		// Close with the writer mid-stream; it must return ErrClosed and lose only the queue.
		waitFor(t, 5*time.Second, func() error {
			if b.Head() == 0 {
				return errors.New("no commit yet")
			}
			return nil
		})
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; !errors.Is(err, ErrClosed) {
			t.Errorf("Run after Close = %v, want ErrClosed", err)
		}
		cancel()
		checkInvariants(t, path)
	}
	b := openBuffer(t, path, Options{})
	checkStateAgrees(t, b)
}

// checkStateAgrees checks that state "last" holds the first 8 bytes of the head entry's payload,
// which payload() makes the entry's seq.
func checkStateAgrees(t testing.TB, b *Buffer) {
	t.Helper()
	last, err := b.State("last")
	if err != nil {
		t.Fatal(err)
	}
	if b.Head() == 0 {
		if last != nil {
			t.Errorf("empty buffer with state last = %x", last)
		}
		return
	}
	var p []byte
	err = b.ReadAfter(b.Head()-1, 1, func(_ uint64, v []byte) error { p = append(p, v...); return nil })
	if err != nil || len(p) < 8 {
		t.Fatalf("read head %d: %d bytes, %v", b.Head(), len(p), err)
	}
	if !bytes.Equal(last, p[:8]) || beUint64(last) != b.Head() {
		t.Errorf("state last = %x, head %d has payload %x", last, b.Head(), p[:8])
	}
}

func TestBuffer_Append_ConcurrentProducers(t *testing.T) {
	const producers, each = 8, 2000
	b := openBuffer(t, "", Options{QueueLen: 1000, MaxBatch: 300})
	runBuffer(t, b)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, producers)
	for p := range producers {
		wg.Go(func() {
			for i := range each {
				msg := fmt.Appendf(nil, "%d/%d", p, i)
				for {
					h := b.Head()
					err := b.Append(msg)
					if err == nil {
						break
					}
					if !errors.Is(err, ErrQueueFull) {
						errs <- err
						return
					}
					if err := b.Wait(ctx, h); err != nil { // the queue drains at the next commit
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	flush(t, b)

	next := make([]int, producers)
	got := readAll(t, b, 0)
	for i, e := range got {
		if e.seq != uint64(i+1) {
			t.Fatalf("entry %d has seq %d", i, e.seq)
		}
		var p, n int
		if _, err := fmt.Sscanf(string(e.payload), "%d/%d", &p, &n); err != nil {
			t.Fatalf("seq %d: payload %q: %v", e.seq, e.payload, err)
		}
		if n != next[p] {
			t.Fatalf("seq %d: producer %d's append %d, want %d", e.seq, p, n, next[p])
		}
		next[p]++
	}
	if len(got) != producers*each {
		t.Errorf("got %d entries, want %d", len(got), producers*each)
	}
	s := b.Stats()
	if s.Appended != producers*each || s.Committed != producers*each || s.QueueLen != 0 {
		t.Errorf("Stats: %+v", s)
	}
}

func TestBuffer_Wait(t *testing.T) {
	b := openBuffer(t, "", Options{})
	waited := make(chan error, 1)
	go func() { waited <- b.Wait(context.Background(), 0) }()

	if err := b.Append([]byte("a")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-waited:
		t.Fatalf("Wait returned %v with no writer running", err)
	default:
	}
	runBuffer(t, b)
	select {
	case err := <-waited:
		if err != nil {
			t.Fatalf("Wait: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return within 5s of a commit")
	}
	if err := b.Wait(context.Background(), 0); err != nil {
		t.Errorf("Wait(0) with head 1: %v", err)
	}

	t.Run("many waiters", func(t *testing.T) {
		var wg sync.WaitGroup
		for range 5 {
			wg.Go(func() {
				if err := b.Wait(context.Background(), 1); err != nil {
					t.Error(err)
				}
			})
		}
		if err := b.Append([]byte("b")); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
	})
	t.Run("ctx", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		go cancel()
		if err := b.Wait(ctx, 100); !errors.Is(err, context.Canceled) {
			t.Errorf("Wait with a canceled ctx = %v, want context.Canceled", err)
		}
	})
}

func TestBuffer_Append_QueueFull(t *testing.T) {
	b := openBuffer(t, "", Options{QueueLen: 3})
	for i := range uint64(3) {
		if err := b.Append(payload(i)); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
	}
	if err := b.Append(payload(3)); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("4th Append = %v, want ErrQueueFull", err)
	}
	if s := b.Stats(); s.QueueLen != 3 || s.QueueFull != 1 || s.Appended != 3 {
		t.Errorf("Stats: %+v", s)
	}
	runBuffer(t, b)
	flush(t, b)
	got := readAll(t, b, 0)
	if len(got) != 3 {
		t.Fatalf("got %d entries, want 3", len(got))
	}
	for i, e := range got {
		if !bytes.Equal(e.payload, payload(uint64(i))) {
			t.Errorf("seq %d: wrong payload", e.seq)
		}
	}
	if err := b.Append(payload(3)); err != nil {
		t.Errorf("Append after the queue drained: %v", err)
	}
}

func TestBuffer_Run_DrainsOnCancel(t *testing.T) {
	b := openBuffer(t, "", Options{MaxBatch: 7})
	for i := range uint64(100) {
		if err := b.Append(payload(i)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if h := b.Head(); h != 100 {
		t.Errorf("Head() after Run drained = %d, want 100", h)
	}
	if err := b.Append([]byte("late")); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Run returned = %v, want ErrClosed", err)
	}
	if err := b.Flush(context.Background()); err != nil {
		t.Errorf("Flush with everything committed: %v", err)
	}
	if err := b.Wait(context.Background(), 100); !errors.Is(err, ErrClosed) {
		t.Errorf("Wait beyond head after Run returned = %v, want ErrClosed", err)
	}
	if err := b.Run(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("second Run = %v, want ErrClosed", err)
	}
}

func TestBuffer_Run_Twice(t *testing.T) {
	b := openBuffer(t, "", Options{})
	runBuffer(t, b)
	if err := b.Append([]byte("x")); err != nil { // proves the first Run is up
		t.Fatal(err)
	}
	flush(t, b)
	if err := b.Run(context.Background()); err == nil || errors.Is(err, ErrClosed) {
		t.Errorf("concurrent second Run = %v, want an 'already running' error", err)
	}
}

func TestBuffer_Close(t *testing.T) {
	b, err := Open(tempPath(t), Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Append([]byte("queued, never committed")); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	for name, err := range map[string]error{
		"Append":    b.Append(nil),
		"Flush":     b.Flush(context.Background()),
		"Wait":      b.Wait(context.Background(), 0),
		"Run":       b.Run(context.Background()),
		"ReadAfter": b.ReadAfter(0, 1, func(uint64, []byte) error { return nil }),
		"Ack":       b.Ack(1),
		"SetState":  b.SetState("k", nil),
	} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
	if _, err := b.State("k"); !errors.Is(err, ErrClosed) {
		t.Errorf("State after Close = %v, want ErrClosed", err)
	}
}

func TestBuffer_Close_ReleasesFlush(t *testing.T) {
	b, err := Open(tempPath(t), Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Append([]byte("x")); err != nil {
		t.Fatal(err)
	}
	flushed := make(chan error, 1)
	go func() { flushed <- b.Flush(context.Background()) }()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-flushed; !errors.Is(err, ErrClosed) {
		t.Errorf("Flush released by Close = %v, want ErrClosed", err)
	}
}

func TestBuffer_Ack_BeyondHeadKeepsCursor(t *testing.T) {
	b := openBuffer(t, "", Options{})
	runBuffer(t, b)
	for i := range uint64(3) {
		if err := b.Append(payload(i)); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, b)
	if err := b.Ack(1); err != nil {
		t.Fatal(err)
	}
	if err := b.Ack(4); err == nil {
		t.Fatal("Ack(4) beyond head 3: got nil error")
	}
	if b.Cursor() != 1 || len(readAll(t, b, 0)) != 2 {
		t.Errorf("a refused Ack changed the buffer: cursor %d", b.Cursor())
	}
}
