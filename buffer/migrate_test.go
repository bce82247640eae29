package buffer

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// format1 is testdata/format1.json: what the committed format1.db holds (see testdata/gen).
type format1 struct {
	FormatVersion int               `json:"format_version"`
	Epoch         string            `json:"epoch"`
	Head          uint64            `json:"head"`
	Cursor        uint64            `json:"cursor"`
	States        map[string]string `json:"states"`
	Entries       []struct {
		Seq     uint64 `json:"seq"`
		Payload string `json:"payload"`
	} `json:"entries"`
}

// copyFixture copies testdata/<name> into a new t.TempDir() as buffer.db: the committed file
// itself is never opened for writing.
func copyFixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "buffer.db")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestBuffer_Open_Format1File: this code opens a file written by format_version 1 (the format
// of the first release) and reads back exactly its waiting entries, its cursor, epoch and
// states; it goes on appending after the old head and acknowledging, and leaves the file at the
// current format. When the format changes, this test keeps the format1 file and proves the
// migration.
func TestBuffer_Open_Format1File(t *testing.T) {
	var want format1
	js, err := os.ReadFile(filepath.Join("testdata", "format1.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(js, &want); err != nil {
		t.Fatal(err)
	}
	if want.FormatVersion != 1 || len(want.Entries) == 0 {
		t.Fatalf("fixture: format_version %d, %d entries", want.FormatVersion, len(want.Entries))
	}
	path := copyFixture(t, "format1.db")
	b := openBuffer(t, path, Options{})
	if path, cause := b.MovedAside(); path != "" {
		t.Fatalf("the format 1 file was moved aside to %s: %v", path, cause)
	}
	if b.Epoch() != want.Epoch || b.Head() != want.Head || b.Cursor() != want.Cursor {
		t.Fatalf("epoch %s head %d cursor %d, want %s %d %d", b.Epoch(), b.Head(), b.Cursor(),
			want.Epoch, want.Head, want.Cursor)
	}
	for k, v := range want.States {
		got, err := b.State(k)
		if err != nil {
			t.Fatal(err)
		}
		if hex.EncodeToString(got) != v {
			t.Errorf("state %s = %x, want %s", k, got, v)
		}
	}

	i := 0
	err = b.ReadAfter(b.Cursor(), 100, func(seq uint64, payload []byte) error {
		if i >= len(want.Entries) {
			t.Errorf("seq %d: more entries than the fixture's %d", seq, len(want.Entries))
			return nil
		}
		w := want.Entries[i]
		i++
		if seq != w.Seq || hex.EncodeToString(payload) != w.Payload {
			t.Errorf("entry %d: seq %d payload %x, want seq %d payload %s", i, seq, payload, w.Seq, w.Payload)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if i != len(want.Entries) {
		t.Fatalf("read %d entries, want %d", i, len(want.Entries))
	}

	// The file goes on as a live buffer: seqs continue after the old head, acks work.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	stop := sync.OnceFunc(func() { cancel(); <-done })
	defer stop()
	if err := b.Append([]byte("after the upgrade")); err != nil {
		t.Fatal(err)
	}
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if b.Head() != want.Head+1 {
		t.Fatalf("head %d after one append, want %d", b.Head(), want.Head+1)
	}
	if err := b.Ack(b.Head()); err != nil {
		t.Fatal(err)
	}
	stop()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if v := metaFormat(t, path); v != formatVersion {
		t.Errorf("format_version %d after use, want the current %d", v, formatVersion)
	}
}

// TestBuffer_Format1Fixture_Untouched: the committed file is the one gen wrote (a test that
// wrote into testdata would show here as a changed epoch or head).
func TestBuffer_Format1Fixture_Untouched(t *testing.T) {
	var want format1
	js, err := os.ReadFile(filepath.Join("testdata", "format1.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(js, &want); err != nil {
		t.Fatal(err)
	}
	if v := metaFormat(t, filepath.Join("testdata", "format1.db")); v != 1 {
		t.Fatalf("testdata/format1.db has format_version %d, want 1", v)
	}
	db, err := bolt.Open(filepath.Join("testdata", "format1.db"), 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if got := meta.Get(keyEpoch); !bytes.Equal(got, []byte(want.Epoch)) {
			t.Errorf("epoch %q, want %q", got, want.Epoch)
		}
		if got := binary.BigEndian.Uint64(meta.Get(keyHead)); got != want.Head {
			t.Errorf("head %d, want %d", got, want.Head)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// metaFormat reads the format_version of a closed buffer file.
func metaFormat(t *testing.T, path string) uint64 {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v uint64
	err = db.View(func(tx *bolt.Tx) error {
		v = binary.BigEndian.Uint64(tx.Bucket(bucketMeta).Get(keyFormat))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}
