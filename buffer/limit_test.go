package buffer

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// drops collects what OnDrop reports.
type drops struct {
	mu sync.Mutex
	d  []Drop
}

func (d *drops) add(x Drop) {
	d.mu.Lock()
	d.d = append(d.d, x)
	d.mu.Unlock()
}

func (d *drops) all() []Drop {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Drop(nil), d.d...)
}

// through waits until the drops reported add up to the count in Stats (OnDrop runs just after
// the commit that Flush waits for) and returns them.
func (d *drops) through(t testing.TB, b *Buffer) []Drop {
	t.Helper()
	waitFor(t, 5*time.Second, func() error {
		var n uint64
		for _, x := range d.all() {
			n += x.Count
		}
		if want := b.Stats().Dropped; n != want {
			return fmt.Errorf("drops reported add up to %d, Stats.Dropped is %d", n, want)
		}
		return nil
	})
	return d.all()
}

// sizedPayload returns a payload of n bytes (at least 8) that starts with seq, the rest derived
// from it.
func sizedPayload(seq uint64, n int) []byte {
	p := make([]byte, max(n, 8))
	binary.BigEndian.PutUint64(p, seq)
	for i := 8; i < len(p); i++ {
		p[i] = byte(seq) ^ byte(i)
	}
	return p
}

// checkDrops checks that the drops reported cover exactly the seqs 1 … through, in order,
// contiguous, and returns their count.
func checkDrops(t testing.TB, ds []Drop, through uint64) {
	t.Helper()
	next := uint64(1)
	for i, d := range ds {
		if d.First != next || d.Last < d.First || d.Count != d.Last-d.First+1 || d.Bytes <= 0 {
			t.Fatalf("drop %d: %+v, want one starting at %d", i, d, next)
		}
		next = d.Last + 1
	}
	if next-1 != through {
		t.Fatalf("drops cover 1 … %d, want 1 … %d (the cursor)", next-1, through)
	}
}

// TestBuffer_Limit_MaxBytes is issue 4's acceptance 2 for the buffer: with no consumer,
// appending ten times MaxBytes drops exactly the oldest entries, the drops reported and counted
// are exactly the missing seqs, nothing newer is missing, and the file never grows past
// MaxBytes (checked after every commit). Then a consumer acknowledges everything and appends go
// on, the file still bounded.
func TestBuffer_Limit_MaxBytes(t *testing.T) {
	const maxBytes = 2 << 20
	for _, tc := range []struct {
		name string
		size func(r *rand.Rand) int
	}{
		{"payload=300", func(*rand.Rand) int { return 300 }},
		{"payload=2800", func(*rand.Rand) int { return 2800 }},
		{"payload=mixed", func(r *rand.Rand) int {
			if r.IntN(10) == 0 {
				return 8 + r.IntN(maxBytes/128-8)
			}
			return 8 + r.IntN(3000)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got drops
			b := openBuffer(t, "", Options{MaxBytes: maxBytes, OnDrop: got.add})
			runBuffer(t, b)
			r := rand.New(rand.NewPCG(1, 2))
			sizes := map[uint64]int{}
			var total int64
			var seq uint64
			for total < 10*maxBytes {
				seq++
				n := tc.size(r)
				sizes[seq] = n
				total += int64(n)
				if err := appendWaiting(b, sizedPayload(seq, n)); err != nil {
					t.Fatal(err)
				}
			}
			flush(t, b)

			s := b.Stats()
			if s.Head != seq {
				t.Fatalf("head %d, want %d", s.Head, seq)
			}
			checkDrops(t, got.through(t, b), s.Cursor)
			if s.Dropped != s.Cursor || s.DroppedMaxBytes != s.Cursor || s.DroppedMaxAge != 0 {
				t.Errorf("Stats: Dropped %d (max_bytes %d, max_age %d), want the cursor %d", s.Dropped, s.DroppedMaxBytes, s.DroppedMaxAge, s.Cursor)
			}
			var droppedBytes int64
			for q := uint64(1); q <= s.Cursor; q++ {
				droppedBytes += int64(sizes[q])
			}
			if s.DroppedBytes != droppedBytes {
				t.Errorf("Stats.DroppedBytes %d, want %d", s.DroppedBytes, droppedBytes)
			}
			var kept int64
			entries := readAll(t, b, 0)
			for i, e := range entries {
				want := s.Cursor + 1 + uint64(i)
				if e.seq != want || !bytes.Equal(e.payload, sizedPayload(want, sizes[want])) {
					t.Fatalf("entry %d: seq %d (%d bytes), want seq %d and its payload", i, e.seq, len(e.payload), want)
				}
				kept += int64(len(e.payload))
			}
			if uint64(len(entries)) != s.Head-s.Cursor || s.Bytes != kept {
				t.Errorf("%d entries of %d bytes, Stats says %d of %d", len(entries), kept, s.Entries, s.Bytes)
			}
			t.Logf("appended %d entries (%d bytes); kept %d (%d bytes, %.0f%% of MaxBytes) in a %d-byte file; dropped %d in %d ranges; %d commits",
				seq, total, len(entries), kept, 100*float64(kept)/maxBytes, s.FileBytes, s.Dropped, len(got.through(t, b)), s.Commits)
			if kept < maxBytes/4 {
				t.Errorf("kept %d bytes, less than a quarter of MaxBytes", kept)
			}

			// A consumer acknowledges everything; appends go on, the file stays bounded.
			if err := b.Ack(s.Head); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			wg.Go(func() { consume(ctx, t, b) })
			for range 5 * maxBytes / 300 {
				seq++
				if err := appendWaiting(b, sizedPayload(seq, 300)); err != nil {
					t.Fatal(err)
				}
			}
			flush(t, b)
			cancel()
			wg.Wait()
			t.Logf("after acking and %d more appends: file %d bytes, dropped %d", 5*maxBytes/300, b.Stats().FileBytes, b.Stats().Dropped-s.Dropped)
		})
	}
}

// consume reads and acknowledges everything committed until ctx ends.
func consume(ctx context.Context, t testing.TB, b *Buffer) {
	for {
		if err := b.Wait(ctx, b.Cursor()); err != nil {
			return
		}
		last := b.Cursor()
		err := b.ReadAfter(last, 10000, func(seq uint64, _ []byte) error { last = seq; return nil })
		if err == nil {
			err = b.Ack(last)
		}
		if err != nil {
			t.Error(err)
			return
		}
	}
}

// TestBuffer_Limit_Stress appends payloads of random sizes (up to MaxBytes/128), some with
// states of random sizes, some droppable, while a consumer reads and acknowledges with random
// pauses and backups hold read transactions: the page bound and the file size are checked after
// every commit (openBuffer), every seq up to the cursor was either read or dropped, drops come
// in order and are counted.
func TestBuffer_Limit_Stress(t *testing.T) {
	for _, maxBytes := range []int64{MinMaxBytes, 4 << 20} {
		t.Run(fmt.Sprintf("max_bytes=%d", maxBytes), func(t *testing.T) {
			var got drops
			b := openBuffer(t, "", Options{MaxBytes: maxBytes, QueueLen: 2000, OnDrop: got.add})
			runBuffer(t, b)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()

			var mu sync.Mutex
			read := map[uint64]bool{}
			var wg sync.WaitGroup
			wg.Go(func() { // consumer with pauses
				r := rand.New(rand.NewPCG(3, 4))
				for ctx.Err() == nil {
					if r.IntN(4) == 0 {
						t := time.NewTimer(time.Duration(r.IntN(30)) * time.Millisecond) // a slow broker, not a wait for a result
						select {
						case <-t.C:
						case <-ctx.Done():
							t.Stop()
							return
						}
					}
					last := b.Cursor()
					err := b.ReadAfter(last, 1+r.IntN(500), func(seq uint64, p []byte) error {
						if binary.BigEndian.Uint64(p) != seq {
							return fmt.Errorf("entry %d holds payload %d", seq, binary.BigEndian.Uint64(p))
						}
						mu.Lock()
						read[seq] = true
						mu.Unlock()
						last = seq
						return nil
					})
					if err == nil && last > b.Cursor() {
						err = b.Ack(last)
					}
					if err != nil {
						t.Error(err)
						return
					}
					if err := b.Wait(ctx, last); err != nil {
						return
					}
				}
			})
			wg.Go(func() { // backups now and then
				for ctx.Err() == nil {
					if _, err := b.WriteTo(io.Discard); err != nil {
						t.Error(err)
						return
					}
					if err := b.Wait(ctx, b.Head()+500); err != nil {
						return
					}
				}
			})

			r := rand.New(rand.NewPCG(5, 6))
			var total int64
			var seq uint64
			for total < 8*maxBytes {
				seq++
				n := 8 + r.IntN(600)
				if r.IntN(20) == 0 {
					n = 8 + r.IntN(int(maxBytes/128)-8)
				}
				total += int64(n)
				p := sizedPayload(seq, n)
				var err error
				switch r.IntN(10) {
				case 0:
					st := State{Key: fmt.Sprintf("asset-%d", r.IntN(50)), Value: make([]byte, r.IntN(2000))}
					err = appendStateWaiting(b, p, st)
				default:
					err = appendWaiting(b, p)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			flush(t, b)
			cancel()
			wg.Wait()

			s := b.Stats()
			ds := got.through(t, b)
			var dropped uint64
			next := uint64(1)
			mu.Lock()
			defer mu.Unlock()
			for _, d := range ds {
				if d.First < next || d.Count != d.Last-d.First+1 {
					t.Fatalf("drop %+v after seq %d", d, next-1)
				}
				for q := next; q < d.First; q++ {
					if !read[q] {
						t.Fatalf("seq %d neither read nor dropped", q)
					}
				}
				dropped += d.Count
				next = d.Last + 1
			}
			for q := next; q <= s.Cursor; q++ {
				if !read[q] {
					t.Fatalf("seq %d neither read nor dropped (cursor %d)", q, s.Cursor)
				}
			}
			if dropped != s.Dropped || s.Head != seq {
				t.Errorf("drops reported %d, Stats %+v; appended %d", dropped, s, seq)
			}
			t.Logf("%d appended (%d bytes), %d read, %d dropped, %d stalls, %d commits; file %d bytes", seq, total, len(read), s.Dropped, s.Stalls, s.Commits, s.FileBytes)
		})
	}
}

// appendStateWaiting is appendWaiting with a state.
func appendStateWaiting(buf *Buffer, p []byte, st State) error {
	for {
		h := buf.Head()
		err := buf.Append(p, st)
		if !errors.Is(err, ErrQueueFull) {
			return err
		}
		if err := buf.Wait(context.Background(), h); err != nil {
			return err
		}
	}
}

// TestBuffer_Limit_ReaderHoldsPages: at MaxBytes, a read transaction that stays open keeps bbolt
// from reusing the pages commits free. The writer then postpones commits (Stats.Stalls) rather
// than grow the file, and goes on once the reader is done.
func TestBuffer_Limit_ReaderHoldsPages(t *testing.T) {
	b := openBuffer(t, "", Options{MaxBytes: MinMaxBytes, QueueLen: 100})
	runBuffer(t, b)
	for n := range uint64(MinMaxBytes / 100) { // twice the file
		if err := appendWaiting(b, payload(n+1)); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, b)
	if b.Stats().Dropped == 0 {
		t.Fatal("nothing dropped: the buffer is not at its limit")
	}

	hold, held := make(chan struct{}), make(chan struct{})
	readDone := make(chan error, 1)
	go func() {
		readDone <- b.ReadAfter(b.Head()-1, 1, func(uint64, []byte) error {
			close(held)
			<-hold // a backup of a slow disk
			return nil
		})
	}()
	<-held
	ctx, cancel := context.WithCancel(context.Background())
	appended := make(chan error, 1)
	go func() {
		for n := uint64(1); ctx.Err() == nil; n++ {
			if err := appendWaiting(b, payload(n)); err != nil && !errors.Is(err, ErrClosed) {
				appended <- err
				return
			}
		}
		appended <- nil
	}()
	waitFor(t, 30*time.Second, func() error {
		if s := b.Stats(); s.Stalls == 0 {
			return fmt.Errorf("no stall yet: %+v", s)
		}
		return nil
	})
	stalled := b.Head()
	// Dropping cannot make room while the pages stay held: it must not drop everything first.
	if s := b.Stats(); s.Entries < 1000 {
		t.Errorf("%d entries of 200 bytes left when the writer stalled: %+v", s.Entries, s)
	}
	// Acks take pages too: once there are none, they fail rather than grow the file.
	var ackErr error
	for range 1000 {
		if ackErr = b.Ack(b.Cursor() + 1); ackErr != nil {
			break
		}
	}
	if !errors.Is(ackErr, errNoRoom) {
		t.Errorf("Acks while the pages are held end with %v, want errNoRoom", ackErr)
	}
	checkFileSize(t, b.path, MinMaxBytes)
	close(hold)
	if err := <-readDone; err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, func() error {
		if h := b.Head(); h < stalled+1000 {
			return fmt.Errorf("head %d, stalled at %d", h, stalled)
		}
		return nil
	})
	cancel()
	if err := <-appended; err != nil {
		t.Fatal(err)
	}
	if err := b.Ack(b.Cursor() + 1); err != nil {
		t.Errorf("Ack once the reader is done: %v", err)
	}
	t.Logf("stalled at head %d (Ack failed: %v); %+v", stalled, ackErr, b.Stats())
}

// TestBuffer_Limit_OversizedFile: a file grown larger than MaxBytes (written without a limit)
// keeps its size, bbolt never shrinking it, but the entries are kept within the budget, and
// CompactFile then brings the file under MaxBytes.
func TestBuffer_Limit_OversizedFile(t *testing.T) {
	path := tempPath(t)
	fillFile(t, path, 40000) // 8 MB of payloads
	before := fileSize(t, path)
	const maxBytes = 2 << 20
	b, err := Open(path, Options{MaxBytes: maxBytes}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	for n := range uint64(5000) {
		if err := appendWaiting(b, payload(40001+n)); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, b)
	s := b.Stats()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if s.FileBytes != before || s.Bytes > maxBytes || s.Dropped == 0 || s.Head != 45000 {
		t.Errorf("file %d bytes (was %d), %d bytes kept, %d dropped, head %d", s.FileBytes, before, s.Bytes, s.Dropped, s.Head)
	}
	checkInvariants(t, path)
	_, after, err := CompactFile(path)
	if err != nil || after > maxBytes || after > s.Bytes*2 {
		t.Errorf("CompactFile: %d bytes, %v; want at most %d and about the %d bytes kept", after, err, maxBytes, s.Bytes)
	}
	b = openBuffer(t, path, Options{MaxBytes: maxBytes})
	if b.Head() != 45000 || b.Cursor() != s.Cursor {
		t.Errorf("after compaction: head %d cursor %d, want 45000 and %d", b.Head(), b.Cursor(), s.Cursor)
	}
	runBuffer(t, b)
	appendN(t, b, 45001, 3000)
}
