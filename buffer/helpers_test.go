package buffer

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// testLog logs to the test's output, shown on failure or with -v.
func testLog(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// tempPath returns a file name in a new t.TempDir().
func tempPath(t testing.TB) string {
	return filepath.Join(t.TempDir(), "buffer.db")
}

// openBuffer opens the buffer at path (a new file in t.TempDir() when path is "") and, in
// t.Cleanup, closes it and checks the file's invariants.
func openBuffer(t testing.TB, path string, opts Options) *Buffer {
	t.Helper()
	if path == "" {
		path = tempPath(t)
	}
	b, err := Open(path, opts, testLog(t))
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	if opts.MaxBytes > 0 {
		checkSizeAfterCommits(t, b, opts.MaxBytes)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		checkInvariants(t, path)
		if opts.MaxBytes > 0 {
			checkFileSize(t, path, opts.MaxBytes)
		}
	})
	return b
}

// checkSizeAfterCommits makes b's writer check, after every commit, that the file is at most
// maxBytes (set before Run; it keeps a hook already set).
func checkSizeAfterCommits(t testing.TB, b *Buffer, maxBytes int64) {
	prev := b.afterCommit
	b.afterCommit = func() {
		checkFileSize(t, b.path, maxBytes)
		if prev != nil {
			prev()
		}
	}
	b.afterPlan = func(need, room, allocated, hwm int64) {
		if allocated > need || hwm > b.lim.hwmFile {
			t.Errorf("commit allocated %d pages, bound %d (room %d); high-water mark %d, limit %d", allocated, need, room, hwm, b.lim.hwmFile)
		}
	}
}

// checkFileSize fails the test if the file at path is larger than maxBytes.
func checkFileSize(t testing.TB, path string, maxBytes int64) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Errorf("stat %s: %v", path, err)
		return
	}
	if fi.Size() > maxBytes {
		t.Errorf("file %s is %d bytes, over MaxBytes %d", path, fi.Size(), maxBytes)
	}
}

// runBuffer starts b.Run in a goroutine. The returned stop cancels it and returns Run's result;
// it is safe to call more than once, and t.Cleanup calls it and fails the test if Run did not
// return nil (register openBuffer first, so Run stops before the buffer closes).
func runBuffer(t testing.TB, b *Buffer) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	stop = sync.OnceValue(func() error {
		cancel()
		return <-done
	})
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return stop
}

// checkInvariants opens a closed buffer file read-only with bbolt alone and checks the invariants:
// stored keys gap-free and consecutive, all > cursor, the first right after the cursor, the last
// == head, cursor <= head; plus bbolt's own consistency check.
func checkInvariants(t testing.TB, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second, PreLoadFreelist: true})
	if err != nil {
		t.Errorf("check %s: %v", path, err)
		return
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			t.Errorf("check %s: bbolt: %v", path, err)
		}
		meta := tx.Bucket([]byte("meta"))
		entries := tx.Bucket([]byte("entries"))
		if meta == nil || entries == nil || tx.Bucket([]byte("state")) == nil {
			return errors.New("a bucket is missing")
		}
		if v := binary.BigEndian.Uint64(meta.Get([]byte("format_version"))); v != 1 {
			return fmt.Errorf("format_version %d, want 1", v)
		}
		head := binary.BigEndian.Uint64(meta.Get([]byte("head")))
		cursor := binary.BigEndian.Uint64(meta.Get([]byte("cursor")))
		if cursor > head {
			return fmt.Errorf("cursor %d > head %d", cursor, head)
		}
		var n, last uint64
		c := entries.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if len(k) != 8 || len(v) < 8 {
				return fmt.Errorf("entry key %x with %d-byte value", k, len(v))
			}
			seq := binary.BigEndian.Uint64(k)
			switch {
			case seq <= cursor:
				return fmt.Errorf("entry %d <= cursor %d", seq, cursor)
			case n == 0 && seq != cursor+1:
				return fmt.Errorf("first entry %d, want cursor+1 = %d", seq, cursor+1)
			case n > 0 && seq != last+1:
				return fmt.Errorf("gap: entry %d after %d", seq, last)
			}
			last = seq
			n++
		}
		if n > 0 && last != head {
			return fmt.Errorf("last entry %d, head %d", last, head)
		}
		if n == 0 && head != cursor {
			return fmt.Errorf("no entries but head %d != cursor %d", head, cursor)
		}
		return nil
	})
	if err != nil {
		t.Errorf("check %s: %v", path, err)
	}
}

// entry is a copied-out entry.
type entry struct {
	seq     uint64
	payload []byte
}

// readAll copies out every entry after seq.
func readAll(t testing.TB, b *Buffer, after uint64) []entry {
	t.Helper()
	var out []entry
	err := b.ReadAfter(after, 1<<30, func(seq uint64, p []byte) error {
		out = append(out, entry{seq, append([]byte(nil), p...)})
		return nil
	})
	if err != nil {
		t.Fatalf("ReadAfter(%d): %v", after, err)
	}
	return out
}

// payload returns a 200-byte payload that starts with n.
func payload(n uint64) []byte {
	p := make([]byte, 200)
	binary.BigEndian.PutUint64(p, n)
	for i := 8; i < len(p); i++ {
		p[i] = byte(n) + byte(i)
	}
	return p
}

// flush calls b.Flush with a generous deadline.
func flush(t testing.TB, b *Buffer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

// waitFor polls cond until it returns nil, failing the test with its last error after timeout.
func waitFor(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.After(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		select {
		case <-deadline:
			t.Fatalf("after %v: %v", timeout, err)
		case <-tick.C:
		}
	}
}

func beUint64(b []byte) uint64 { return binary.BigEndian.Uint64(b) }
