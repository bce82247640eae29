package buffer

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestOpenReadOnly(t *testing.T) {
	path := tempPath(t)
	outage(t, path, 100, 40)
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	b, err := OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	s := b.Stats()
	if s.Head != 100 || s.Cursor != 60 || s.Entries != 40 || s.Bytes != 40*200 || s.FileBytes != int64(len(before)) || s.OldestAge <= 0 {
		t.Errorf("Stats: %+v", s)
	}
	got := readAll(t, b, 0)
	if len(got) != 40 || got[0].seq != 61 || !bytes.Equal(got[0].payload, payload(60)) {
		t.Errorf("ReadAfter: %d entries from %d", len(got), got[0].seq)
	}
	if v, err := b.State("last"); err != nil || string(v) != "state kept" {
		t.Errorf("State = %q, %v", v, err)
	}
	for name, err := range map[string]error{
		"Append":          b.Append(nil),
		"AppendDroppable": b.AppendDroppable(nil),
		"Ack":             b.Ack(70),
		"SetState":        b.SetState("k", nil),
		"Run":             b.Run(context.Background()),
		"Wait":            b.Wait(context.Background(), 100),
	} {
		if !errors.Is(err, ErrReadOnly) {
			t.Errorf("%s on a read-only buffer = %v, want ErrReadOnly", name, err)
		}
	}
	// A starting agent waits for the shared lock.
	if _, err := Open(path, Options{}, nil); !errors.Is(err, ErrInUse) {
		t.Errorf("Open while OpenReadOnly has it = %v, want ErrInUse", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	if !bytes.Equal(before, after) || !fi.ModTime().Equal(old) {
		t.Error("OpenReadOnly changed the file")
	}
	if names, _ := filepath.Glob(path + "*"); len(names) != 1 {
		t.Errorf("files next to it: %q", names)
	}
}

func TestOpenReadOnly_Refuses(t *testing.T) {
	t.Run("in use", func(t *testing.T) {
		path := tempPath(t)
		openBuffer(t, path, Options{})
		start := time.Now()
		if _, err := OpenReadOnly(path); !errors.Is(err, ErrInUse) {
			t.Errorf("OpenReadOnly of an open file = %v, want ErrInUse", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("OpenReadOnly took %v to give up, want about a second", d)
		}
	})
	t.Run("missing", func(t *testing.T) {
		path := tempPath(t)
		if _, err := OpenReadOnly(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("OpenReadOnly of a missing file = %v, want ErrNotExist", err)
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Error("OpenReadOnly created the file")
		}
	})
	for name, corrupt := range corruptions {
		t.Run(name, func(t *testing.T) {
			path := tempPath(t)
			corrupt(t, path)
			damaged, _ := os.ReadFile(path)
			var cerr *CorruptError
			if _, err := OpenReadOnly(path); !errors.As(err, &cerr) || cerr.Path != path {
				t.Errorf("OpenReadOnly = %v, want a *CorruptError for %s", err, path)
			}
			if got, _ := os.ReadFile(path); !bytes.Equal(got, damaged) {
				t.Error("OpenReadOnly changed a damaged file")
			}
			if names, _ := filepath.Glob(path + "*"); len(names) != 1 {
				t.Errorf("files next to it: %q", names)
			}
		})
	}
}
