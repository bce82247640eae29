package buffer

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestBuffer_Append_Allocs keeps the hot path honest: one allocation per Append (the copy of the
// payload), none for the queue, the stamp or the wake-up.
func TestBuffer_Append_Allocs(t *testing.T) {
	b := openBuffer(t, "", Options{QueueLen: 2000})
	p := payload(1)
	allocs := testing.AllocsPerRun(1000, func() {
		if err := b.Append(p); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 1 {
		t.Errorf("Append allocates %v times per call, want at most 1", allocs)
	}
}

// recordsPerOp is the work of one benchmark op: that many 200-byte records appended and committed.
const recordsPerOp = 1000

// BenchmarkBuffer_AppendCommit measures 200-byte appends from 1 and 8 producers until
// committed, with the writer's natural group commit and fsync on. flush=op waits for the commit
// after every 1000 records (a burst: the writer starts committing before the burst is all
// queued); flush=end streams, waiting on the queue when it is full, and flushes once at the end.
// Compare records/s with BenchmarkBolt_Put.
func BenchmarkBuffer_AppendCommit(b *testing.B) {
	for _, flushEach := range []bool{true, false} {
		for _, producers := range []int{1, 8} {
			name := fmt.Sprintf("producers=%d/size=200/flush=end", producers)
			if flushEach {
				name = fmt.Sprintf("producers=%d/size=200/flush=op", producers)
			}
			b.Run(name, func(b *testing.B) {
				buf := openBuffer(b, "", Options{})
				runBuffer(b, buf)
				p := make([]byte, 200)
				b.ReportAllocs()
				b.SetBytes(recordsPerOp * int64(len(p)))
				for b.Loop() {
					var wg sync.WaitGroup
					for range producers {
						wg.Go(func() {
							for range recordsPerOp / producers {
								if err := appendWaiting(buf, p); err != nil {
									b.Error(err)
									return
								}
							}
						})
					}
					wg.Wait()
					if flushEach {
						if err := buf.Flush(context.Background()); err != nil {
							b.Fatal(err)
						}
					}
				}
				if err := buf.Flush(context.Background()); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(b.N*recordsPerOp)/b.Elapsed().Seconds(), "records/s")
				s := buf.Stats()
				b.ReportMetric(float64(s.Committed)/float64(s.Commits), "records/commit")
			})
		}
	}
}

// appendWaiting appends p, waiting for the next commit whenever the queue is full.
func appendWaiting(buf *Buffer, p []byte) error {
	for {
		h := buf.Head()
		err := buf.Append(p)
		if !errors.Is(err, ErrQueueFull) {
			return err
		}
		if err := buf.Wait(context.Background(), h); err != nil {
			return err
		}
	}
}

// BenchmarkBuffer_SteadyState appends from one producer while a consumer reads and acknowledges
// everything committed (each Ack deletes in one transaction), and reports the file size reached.
func BenchmarkBuffer_SteadyState(b *testing.B) {
	b.Run("producers=1/size=200/consumer=ack-all", func(b *testing.B) {
		buf := openBuffer(b, "", Options{})
		runBuffer(b, buf)
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() {
			for {
				if err := buf.Wait(ctx, buf.Cursor()); err != nil {
					return
				}
				last := buf.Cursor()
				err := buf.ReadAfter(last, 10000, func(seq uint64, _ []byte) error { last = seq; return nil })
				if err == nil {
					err = buf.Ack(last)
				}
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
		p := make([]byte, 200)
		b.ReportAllocs()
		b.SetBytes(recordsPerOp * int64(len(p)))
		for b.Loop() {
			for range recordsPerOp {
				if err := appendWaiting(buf, p); err != nil {
					b.Fatal(err)
				}
			}
		}
		if err := buf.Flush(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(b.N*recordsPerOp)/b.Elapsed().Seconds(), "records/s")
		cancel()
		wg.Wait()
		b.ReportMetric(float64(buf.Stats().FileBytes)/(1<<20), "file-MiB")
	})
}

// BenchmarkBolt_Put is the baseline: raw bbolt, 1000 puts of 200-byte values per transaction,
// FillPercent 1.0, fsync on.
func BenchmarkBolt_Put(b *testing.B) {
	b.Run(fmt.Sprintf("batch=%d/size=200", recordsPerOp), func(b *testing.B) {
		db, err := bolt.Open(filepath.Join(b.TempDir(), "bolt.db"), 0o600, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		name := []byte("entries")
		if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket(name); return err }); err != nil {
			b.Fatal(err)
		}
		val := make([]byte, 208)
		var key [8]byte
		var seq uint64
		b.ReportAllocs()
		b.SetBytes(recordsPerOp * 200)
		for b.Loop() {
			err := db.Update(func(tx *bolt.Tx) error {
				bk := tx.Bucket(name)
				bk.FillPercent = 1.0
				for range recordsPerOp {
					seq++
					binary.BigEndian.PutUint64(key[:], seq)
					if err := bk.Put(key[:], val); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*recordsPerOp)/b.Elapsed().Seconds(), "records/s")
	})
}
