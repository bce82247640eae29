package buffer

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// snapshot is what a buffer file holds, for comparisons.
type snapshot struct {
	Epoch         string
	Head, Cursor  uint64
	Entries       []entry
	State         string
	Bytes         int64
	AgeFloor      uint64
	EntriesStored uint64
}

func takeSnapshot(t testing.TB, b *Buffer) snapshot {
	t.Helper()
	st, err := b.State("last")
	if err != nil {
		t.Fatal(err)
	}
	s := b.Stats()
	return snapshot{Epoch: b.Epoch(), Head: b.Head(), Cursor: b.Cursor(), Entries: readAll(t, b, 0), State: string(st),
		Bytes: s.Bytes, AgeFloor: s.AgeFloor, EntriesStored: s.Entries}
}

func readOnlySnapshot(t testing.TB, path string) snapshot {
	t.Helper()
	b, err := OpenReadOnly(path)
	if err != nil {
		t.Fatalf("OpenReadOnly(%s): %v", path, err)
	}
	defer b.Close()
	return takeSnapshot(t, b)
}

var cmpEntry = cmp.AllowUnexported(entry{})

// outage fills a file at path as after a long outage that ended: n entries appended, all but
// the last keep acknowledged.
func outage(t testing.TB, path string, n, keep uint64) {
	t.Helper()
	fillFile(t, path, n)
	b, err := Open(path, Options{NoSync: true}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.SetState("last", []byte("state kept")); err != nil {
		t.Fatal(err)
	}
	if err := b.Ack(n - keep); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestCompactFile(t *testing.T) {
	path := tempPath(t)
	outage(t, path, 50000, 10)
	want := readOnlySnapshot(t, path)

	before, after, err := CompactFile(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("compacted %d bytes to %d", before, after)
	if after >= before/10 {
		t.Errorf("compacted %d bytes to %d, want less than a tenth", before, after)
	}
	if pages := boltPagesSize(t, path); after > pages+compactAllocSize+4096 {
		t.Errorf("compacted file is %d bytes for %d bytes of pages", after, pages)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != after || fi.Mode().Perm() != 0o600 {
		t.Errorf("file after compaction: %v, %v; want %d bytes, mode 0600", fi, err, after)
	}
	if names, _ := filepath.Glob(path + "*"); len(names) != 1 {
		t.Errorf("files next to it: %q", names)
	}
	checkInvariants(t, path)
	if diff := cmp.Diff(want, readOnlySnapshot(t, path), cmpEntry); diff != "" {
		t.Errorf("compacted file (-want +got):\n%s", diff)
	}

	// It opens as the same buffer and goes on from its head.
	b := openBuffer(t, path, Options{})
	runBuffer(t, b)
	appendN(t, b, 50001, 1)
	if b.Head() != 50001 || b.Epoch() != want.Epoch {
		t.Errorf("after compaction: head %d epoch %s, want 50001 and %s", b.Head(), b.Epoch(), want.Epoch)
	}
}

func TestCompact(t *testing.T) {
	src := tempPath(t)
	outage(t, src, 5000, 100)
	dst := filepath.Join(t.TempDir(), "copy.db")
	if err := Compact(src, dst); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(readOnlySnapshot(t, src), readOnlySnapshot(t, dst), cmpEntry); diff != "" {
		t.Errorf("compacted copy (-src +dst):\n%s", diff)
	}
	if err := Compact(src, dst); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("Compact onto an existing file = %v, want an error saying it exists", err)
	}
	if err := Compact(filepath.Join(t.TempDir(), "missing.db"), filepath.Join(t.TempDir(), "x.db")); err == nil {
		t.Error("Compact of a missing file: got nil error")
	}
}

func TestCompactFile_Refuses(t *testing.T) {
	t.Run("in use", func(t *testing.T) {
		path := tempPath(t)
		openBuffer(t, path, Options{})
		start := time.Now()
		if _, _, err := CompactFile(path); !errors.Is(err, ErrInUse) {
			t.Errorf("CompactFile of an open file = %v, want ErrInUse", err)
		}
		if err := Compact(path, filepath.Join(t.TempDir(), "copy.db")); !errors.Is(err, ErrInUse) {
			t.Errorf("Compact of an open file = %v, want ErrInUse", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("took %v", d)
		}
		if names, _ := filepath.Glob(path + "*"); len(names) != 1 {
			t.Errorf("files next to it: %q", names)
		}
	})
	t.Run("corrupt", func(t *testing.T) {
		path := tempPath(t)
		corruptions["garbage"](t, path)
		var cerr *CorruptError
		if _, _, err := CompactFile(path); !errors.As(err, &cerr) {
			t.Errorf("CompactFile of garbage = %v, want a *CorruptError", err)
		}
		if names, _ := filepath.Glob(path + "*"); len(names) != 1 {
			t.Errorf("files next to it: %q", names)
		}
	})
}

// TestBuffer_WriteTo backs up a running buffer while appends and acks go on: the copy opens
// and holds the entries of one moment, which the original also held.
func TestBuffer_WriteTo(t *testing.T) {
	b := openBuffer(t, "", Options{})
	runBuffer(t, b)
	if err := b.SetState("last", []byte("s")); err != nil {
		t.Fatal(err)
	}
	appendN(t, b, 1, 3000)
	if err := b.Ack(1000); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { // appends go on meanwhile
		for n := uint64(3001); ctx.Err() == nil; n++ {
			if err := appendWaiting(b, payload(n)); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	waitFor(t, 5*time.Second, func() error {
		if b.Head() < 3100 {
			return errors.New("appends have not started")
		}
		return nil
	})
	path := filepath.Join(t.TempDir(), "backup.db")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := b.WriteTo(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Size() != n {
		t.Errorf("WriteTo reported %d bytes, the file has %d", n, fi.Size())
	}
	checkInvariants(t, path)
	backup := readOnlySnapshot(t, path)
	if backup.Head < 3100 || backup.Cursor != 1000 || backup.Epoch != b.Epoch() || backup.State != "s" {
		t.Errorf("backup: head %d cursor %d epoch %s state %q", backup.Head, backup.Cursor, backup.Epoch, backup.State)
	}
	for i, e := range backup.Entries {
		if e.seq != 1001+uint64(i) || !bytes.Equal(e.payload, payload(e.seq)) {
			t.Fatalf("backup entry %d: seq %d", i, e.seq)
		}
	}
	if uint64(len(backup.Entries)) != backup.Head-backup.Cursor {
		t.Errorf("backup holds %d entries, head %d cursor %d", len(backup.Entries), backup.Head, backup.Cursor)
	}
}

// TestCompactFile_ConcurrentOpen: an Open racing CompactFile either fails with ErrInUse or
// opens the file then at the path, never the one compaction renamed over (whose appends would
// be lost with it).
func TestCompactFile_ConcurrentOpen(t *testing.T) {
	for round := range 5 {
		path := tempPath(t)
		outage(t, path, 20000, 10)
		compacted := make(chan error, 1)
		go func() {
			_, _, err := CompactFile(path)
			compacted <- err
		}()
		b, openErr := Open(path, Options{}, testLog(t))
		if err := <-compacted; err != nil && !errors.Is(err, ErrInUse) {
			t.Fatal(err)
		}
		if openErr != nil {
			if !errors.Is(openErr, ErrInUse) {
				t.Fatalf("round %d: Open racing CompactFile = %v, want nil or ErrInUse", round, openErr)
			}
			t.Logf("round %d: Open gave up: %v", round, openErr)
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- b.Run(ctx) }()
		appendN(t, b, 20001, 1)
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		if s := readOnlySnapshot(t, path); s.Head != 20001 || len(s.Entries) != 11 {
			t.Errorf("round %d: file at the path has head %d and %d entries, want 20001 and 11", round, s.Head, len(s.Entries))
		}
	}
}
