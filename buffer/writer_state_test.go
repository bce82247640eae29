package buffer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"
)

// TestWriter_State_Stall: Writer tells a writer stuck in one commit from a slow or idle one. A
// read transaction held open (a reader that does not return) keeps a commit that must grow the
// file waiting: CommitSince stays set, with Backups 0 for a reader and 1 for a backup (WriteTo
// into a writer nobody reads). Once the read ends the commit completes and CommitSince is zero.
func TestWriter_State_Stall(t *testing.T) {
	for _, backup := range []bool{false, true} {
		t.Run(fmt.Sprintf("backup=%v", backup), func(t *testing.T) {
			b := openBuffer(t, "", Options{})
			if w := b.Writer(); w.Stopped || !w.CommitSince.IsZero() || w.Backups != 0 {
				t.Fatalf("before Run: %+v", w)
			}
			stop := runBuffer(t, b)
			defer stop()
			if err := b.Append([]byte("first")); err != nil {
				t.Fatal(err)
			}
			if err := b.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}

			release := make(chan struct{})
			readDone := make(chan error, 1)
			if backup {
				r, w := io.Pipe()
				go func() {
					_, err := b.WriteTo(w)
					readDone <- err
				}()
				go func() { <-release; r.CloseWithError(errors.New("the backup's reader went away")) }()
			} else {
				go func() {
					readDone <- b.ReadAfter(0, 1, func(uint64, []byte) error { <-release; return nil })
				}()
			}
			// Appends until a commit has to grow the file, which waits for the read.
			payload := bytes.Repeat([]byte{'x'}, 64<<10)
			var stuck WriterState
			deadline := time.Now().Add(30 * time.Second)
			for {
				w := b.Writer()
				if !w.CommitSince.IsZero() && time.Since(w.CommitSince) > 200*time.Millisecond {
					stuck = w
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no commit waited for the open read within 30s: %+v, stats %+v", w, b.Stats())
				}
				if b.Stats().QueueLen < 64 {
					if err := b.Append(payload); err != nil {
						t.Fatal(err)
					}
				}
				<-time.After(5 * time.Millisecond) // the polling interval of a wait with a deadline
			}
			if want := map[bool]int{false: 0, true: 1}[backup]; stuck.Backups != want || stuck.Stopped {
				t.Errorf("while the commit waits: %+v, want not stopped and %d backups", stuck, want)
			}
			close(release)
			if err := <-readDone; backup != (err != nil) {
				t.Errorf("read ended with %v", err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := b.Flush(ctx); err != nil {
				t.Fatalf("flush after the read ended: %v", err)
			}
			waitState(t, b, "no commit in progress, no backup", func(w WriterState) bool {
				return !w.Stopped && w.CommitSince.IsZero() && w.Backups == 0
			})
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			if w := b.Writer(); !w.Stopped {
				t.Errorf("after Run returned: %+v, want stopped", w)
			}
		})
	}
}

func waitState(t *testing.T, b *Buffer, what string, ok func(WriterState) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for w := b.Writer(); !ok(w); w = b.Writer() {
		if time.Now().After(deadline) {
			t.Fatalf("not %s within 10s: %+v", what, w)
		}
		<-time.After(5 * time.Millisecond) // the polling interval of a wait with a deadline
	}
}
