package buffer

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
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

// TestBuffer_MaxBytes_DropsOldest is issue 4's acceptance 2 for the buffer: with no consumer,
// appending ten times MaxBytes drops exactly the oldest entries, the drops reported and counted
// are exactly the missing seqs, nothing newer is missing, and the file never grows past
// MaxBytes (checked after every commit). Then a consumer acknowledges everything and appends go
// on, the file still bounded.
func TestBuffer_MaxBytes_DropsOldest(t *testing.T) {
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
			checkDrops(t, got.all(), s.Cursor)
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
				seq, total, len(entries), kept, 100*float64(kept)/maxBytes, s.FileBytes, s.Dropped, len(got.all()), s.Commits)
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

var _ = fmt.Sprint
var _ = time.Second
