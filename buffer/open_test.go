package buffer

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// fillFile creates a closed buffer file at path holding n 200-byte entries. It skips fsync: the
// file is a fixture, closed cleanly.
func fillFile(t testing.TB, path string, n uint64) {
	t.Helper()
	b, err := Open(path, Options{QueueLen: int(n), NoSync: true}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	for i := range n {
		if err := b.Append(payload(i)); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestOpen_Creates(t *testing.T) {
	path := tempPath(t)
	b := openBuffer(t, path, Options{})
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("file mode %v, want 0600", perm)
	}
	if moved, cause := b.MovedAside(); moved != "" || cause != nil {
		t.Errorf("MovedAside() = %q, %v for a new file", moved, cause)
	}
	if s := b.Stats(); s.Head != 0 || s.Cursor != 0 || s.Entries != 0 {
		t.Errorf("new buffer Stats: %+v", s)
	}
	names, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "*"))
	if len(names) != 1 {
		t.Errorf("directory holds %q, want only the buffer file", names)
	}
}

func TestOpen_Errors(t *testing.T) {
	t.Run("no directory", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "missing", "buffer.db")
		if _, err := Open(path, Options{}, nil); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("Open in a missing directory = %v, want an error naming the file", err)
		}
	})
	t.Run("directory", func(t *testing.T) {
		dir := t.TempDir()
		if _, err := Open(dir, Options{}, nil); err == nil {
			t.Error("Open of a directory: got nil error")
		}
	})
	t.Run("options", func(t *testing.T) {
		_, err := Open(tempPath(t), Options{MaxBatch: -1, QueueLen: -1, CommitInterval: -1}, nil)
		for _, field := range []string{"MaxBatch", "QueueLen", "CommitInterval"} {
			if err == nil || !strings.Contains(err.Error(), field) {
				t.Errorf("Open with negative options = %v, want an error naming %s", err, field)
			}
		}
	})
}

func TestOpen_NewerFormat(t *testing.T) {
	path := tempPath(t)
	fillFile(t, path, 10)
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyFormat, be64(2))
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	// An mtime in the past, so a rewrite within the same clock tick would still show.
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	_, err = Open(path, Options{}, testLog(t))
	if !errors.Is(err, ErrNewerFormat) {
		t.Fatalf("Open = %v, want ErrNewerFormat", err)
	}
	for _, want := range []string{path, "format_version 2", "up to 1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("Open changed the bytes of a newer-format file")
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.ModTime().Equal(old) {
		t.Errorf("mtime %v, want untouched %v", fi.ModTime(), old)
	}
	if names, _ := filepath.Glob(path + "*"); len(names) != 1 {
		t.Errorf("files next to it: %q, want none", names)
	}
}

// corruptions make the file at path unreadable in a named way.
var corruptions = map[string]func(t testing.TB, path string){
	"truncated": func(t testing.TB, path string) {
		fillFile(t, path, 5000)
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(path, fi.Size()/2); err != nil {
			t.Fatal(err)
		}
	},
	"zeroed leaf page": func(t testing.TB, path string) {
		fillFile(t, path, 5000)
		id, size := leafPage(t, path)
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteAt(make([]byte, size), int64(id)*int64(size)); err != nil {
			t.Fatal(err)
		}
	},
	"garbage": func(t testing.TB, path string) {
		if err := os.WriteFile(path, []byte(rand.Text()+rand.Text()), 0o600); err != nil {
			t.Fatal(err)
		}
	},
	"random pages": func(t testing.TB, path string) {
		p := make([]byte, 64<<10)
		_, _ = rand.Read(p)
		if err := os.WriteFile(path, p, 0o600); err != nil {
			t.Fatal(err)
		}
	},
	"empty": func(t testing.TB, path string) {
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	},
	"foreign bbolt file": func(t testing.TB, path string) {
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = db.Update(func(tx *bolt.Tx) error {
			bk, err := tx.CreateBucket([]byte("somebody else's"))
			if err != nil {
				return err
			}
			return bk.Put([]byte("k"), []byte("v"))
		})
		if cerr := db.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
	},
	"gap in entries": func(t testing.TB, path string) {
		fillFile(t, path, 10)
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketEntries).Delete(be64(5)) })
		if cerr := db.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
	},
}

// leafPage returns the id of a leaf page in use in the second half of the file, and the page size.
func leafPage(t testing.TB, path string) (id, size int) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, PreLoadFreelist: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		size = db.Info().PageSize
		n := int(tx.Size()) / size
		for id = n / 2; id < n; id++ {
			if p, err := tx.Page(id); err == nil && p != nil && p.Type == "leaf" {
				return nil
			}
		}
		return errors.New("no leaf page in the second half")
	})
	if err != nil {
		t.Fatal(err)
	}
	return id, size
}

func TestOpen_Corrupt(t *testing.T) {
	for name, corrupt := range corruptions {
		t.Run(name, func(t *testing.T) {
			path := tempPath(t)
			corrupt(t, path)
			damaged, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("CET", 3600))
			b, err := Open(path, Options{Now: func() time.Time { return now }}, slog.New(slog.NewTextHandler(&logs, nil)))
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			t.Cleanup(func() {
				if err := b.Close(); err != nil {
					t.Error(err)
				}
				checkInvariants(t, path)
			})
			t.Logf("log: %s", logs.String())

			moved, cause := b.MovedAside()
			if want := path + ".corrupt-20260102T020405Z"; moved != want {
				t.Errorf("MovedAside() path = %q, want %q", moved, want)
			}
			var cerr *CorruptError
			if !errors.As(cause, &cerr) || cerr.Path != path || cerr.Err == nil {
				t.Errorf("MovedAside() cause = %#v, want a *CorruptError for %s with a cause", cause, path)
			}
			if got, err := os.ReadFile(moved); err != nil || !bytes.Equal(got, damaged) {
				t.Errorf("moved-aside file differs from the damaged one (%v)", err)
			}
			if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "file="+path) {
				t.Errorf("log does not report the file at Error:\n%s", logs.String())
			}

			// The fresh buffer works.
			if b.Head() != 0 || len(b.Epoch()) != 16 {
				t.Errorf("fresh buffer: Head %d, Epoch %q", b.Head(), b.Epoch())
			}
			runBuffer(t, b)
			if err := b.Append([]byte("after")); err != nil {
				t.Fatal(err)
			}
			flush(t, b)
			if got := readAll(t, b, 0); len(got) != 1 || got[0].seq != 1 {
				t.Errorf("fresh buffer entries: %v", got)
			}
		})
	}
}

func TestOpen_MovedAsideTwice(t *testing.T) {
	path := tempPath(t)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var moved []string
	for range 2 {
		corruptions["garbage"](t, path)
		b, err := Open(path, Options{Now: func() time.Time { return now }}, nil)
		if err != nil {
			t.Fatal(err)
		}
		m, _ := b.MovedAside()
		moved = append(moved, m)
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if moved[0] == moved[1] {
		t.Errorf("two files moved aside in the same second to the same name %q", moved[0])
	}
}

func TestOpen_InUse(t *testing.T) {
	path := tempPath(t)
	openBuffer(t, path, Options{})
	start := time.Now()
	b, err := Open(path, Options{}, nil)
	if err == nil {
		b.Close()
		t.Fatal("second Open of the same file: got nil error")
	}
	if !strings.Contains(err.Error(), "buffer file "+path+" is in use") {
		t.Errorf("error %q does not say the file is in use", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("second Open took %v", d)
	}
	if names, _ := filepath.Glob(path + "*"); len(names) != 1 {
		t.Errorf("files next to it: %q, want none", names)
	}
}

func TestOpen_LargeFile(t *testing.T) {
	// Measures how long Open's check of an existing file takes (logged), and proves a file
	// with a backlog and some acks passes it.
	path := tempPath(t)
	fillFile(t, path, 20000)
	b := openBuffer(t, path, Options{})
	if err := b.Ack(8000); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	start := time.Now()
	b2 := openBuffer(t, path, Options{})
	t.Logf("Open checked a %d-byte file with %d entries in %v", fi.Size(), b2.Stats().Entries, time.Since(start))
	if m, cause := b2.MovedAside(); m != "" {
		t.Fatalf("healthy file moved aside: %v", cause)
	}
}
