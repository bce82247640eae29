package buffer

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Backoff of the writer after a failed commit (e.g. disk full): it keeps the batch and retries,
// doubling the wait up to the cap, and logs each failure at Error.
const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 5 * time.Second

	// drainAttempts bounds the commits tried for one batch once Run's context has ended, so a
	// dead disk cannot hold up shutdown forever.
	drainAttempts = 3
)

// Append queues a copy of payload, with the named states to write in the same transaction, for
// the writer to commit; the entry's seq is assigned at commit. It never blocks: it returns
// ErrQueueFull when Options.QueueLen payloads are waiting, and ErrClosed once Run has returned or
// Close was called. Appends are committed in the order they were accepted. The caller may reuse
// payload and the states' values as soon as Append returns.
//
// Append allocates once per call (the copy of payload), plus copies of the states when given.
func (b *Buffer) Append(payload []byte, states ...State) error {
	if len(payload) > maxPayload {
		return fmt.Errorf("append %d-byte payload to buffer file %s: over the limit of %d bytes", len(payload), b.path, maxPayload)
	}
	var st []State
	if len(states) > 0 {
		if err := checkStates(states); err != nil {
			return fmt.Errorf("append to buffer file %s: %w", b.path, err)
		}
		st = copyStates(states)
	}
	val := make([]byte, stampLen+len(payload))
	binary.BigEndian.PutUint64(val, uint64(b.opts.Now().UnixNano()))
	copy(val[stampLen:], payload)

	b.mu.Lock()
	if b.stopping || b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	if b.qlen == len(b.ring) {
		b.queueFull++
		b.mu.Unlock()
		return ErrQueueFull
	}
	b.ring[(b.qhead+b.qlen)%len(b.ring)] = item{val: val, states: st}
	b.qlen++
	b.appended++
	b.mu.Unlock()

	select {
	case b.wake <- struct{}{}:
	default: // the writer has a wake-up pending already
	}
	return nil
}

// checkStates refuses what bbolt would refuse at commit: such a commit would fail on every retry.
func checkStates(states []State) error {
	for _, s := range states {
		if len(s.Key) == 0 {
			return errors.New("state key is empty")
		}
		if len(s.Key) > bolt.MaxKeySize {
			return fmt.Errorf("state key of %d bytes is over the limit of %d", len(s.Key), bolt.MaxKeySize)
		}
		if int64(len(s.Value)) > bolt.MaxValueSize {
			return fmt.Errorf("state %q value of %d bytes is over the limit of %d", s.Key, len(s.Value), bolt.MaxValueSize)
		}
	}
	return nil
}

func copyStates(states []State) []State {
	st := make([]State, len(states))
	for i, s := range states {
		st[i].Key = s.Key
		if s.Value != nil {
			st[i].Value = append(make([]byte, 0, len(s.Value)), s.Value...)
		}
	}
	return st
}

// Run is the single writer: it group-commits the queued appends, at most Options.MaxBatch per
// transaction, as soon as the previous commit ended or, with Options.CommitInterval, no sooner
// than that after the previous commit started. A failed commit is logged at Error and retried
// with backoff, the batch kept; Stats counts the failures.
//
// When ctx ends, Run stops accepting appends (Append returns ErrClosed from then on), commits
// everything still queued and returns nil. If those last commits keep failing it gives up after a
// few attempts and returns an error saying how many payloads were lost. It returns ErrClosed if
// Close is called while it runs, and an error at once if another Run is running or has run.
func (b *Buffer) Run(ctx context.Context) error {
	b.mu.Lock()
	switch {
	case b.closed, b.run == runDone:
		b.mu.Unlock()
		return ErrClosed
	case b.run == runRunning:
		b.mu.Unlock()
		return fmt.Errorf("run buffer %s: Run is already running", b.path)
	}
	b.run = runRunning
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		b.run = runDone
		b.stopping = true
		b.broadcastLocked() // Flush and Wait must learn that no commit will come
		b.mu.Unlock()
	}()

	timer := time.NewTimer(time.Hour) // one timer, reused: waiting allocates nothing per commit
	timer.Stop()
	var last time.Time // start of the last commit
	backoff := minBackoff
	for {
		select {
		case <-ctx.Done():
			return b.drain(timer)
		case <-b.closing:
			return ErrClosed
		case <-b.wake:
		}
		for {
			if ctx.Err() != nil { // producers may keep the queue from ever running empty
				return b.drain(timer)
			}
			n := b.batchLen()
			if n == 0 {
				break
			}
			if iv := b.opts.CommitInterval; iv > 0 && !last.IsZero() {
				if d := iv - time.Since(last); d > 0 {
					if err := b.sleep(ctx, timer, d); err != nil {
						return b.stop(err, timer)
					}
					continue // more may have been queued meanwhile
				}
			}
			last = time.Now()
			if err := b.commit(n); err != nil {
				if b.isClosed() {
					return ErrClosed
				}
				b.log.Error("buffer commit failed; retrying", "file", b.path, "payloads", n, "retry_in", backoff, "err", err)
				if err := b.sleep(ctx, timer, backoff); err != nil {
					return b.stop(err, timer)
				}
				backoff = min(2*backoff, maxBackoff)
				continue
			}
			backoff = minBackoff
		}
	}
}

// stop turns the error of an interrupted sleep into Run's result.
func (b *Buffer) stop(err error, timer *time.Timer) error {
	if errors.Is(err, ErrClosed) {
		return ErrClosed
	}
	return b.drain(timer)
}

// sleep waits d; it returns ctx's error or ErrClosed if either ends first.
func (b *Buffer) sleep(ctx context.Context, timer *time.Timer, d time.Duration) error {
	timer.Reset(d)
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		timer.Stop()
		return ctx.Err()
	case <-b.closing:
		timer.Stop()
		return ErrClosed
	}
}

// drain refuses new appends and commits everything queued, giving up on a batch after
// drainAttempts failed commits.
func (b *Buffer) drain(timer *time.Timer) error {
	b.mu.Lock()
	b.stopping = true
	b.mu.Unlock()
	backoff := minBackoff
	for attempt := 1; ; {
		n := b.batchLen()
		if n == 0 {
			return nil
		}
		err := b.commit(n)
		if err == nil {
			attempt, backoff = 1, minBackoff
			continue
		}
		if b.isClosed() {
			return ErrClosed
		}
		if attempt == drainAttempts {
			b.mu.Lock()
			lost := b.qlen
			b.mu.Unlock()
			return fmt.Errorf("commit buffer file %s on shutdown: %d payloads not committed after %d attempts: %w", b.path, lost, attempt, err)
		}
		b.log.Error("buffer commit failed on shutdown; retrying", "file", b.path, "payloads", n, "retry_in", backoff, "err", err)
		attempt++
		timer.Reset(backoff)
		select {
		case <-timer.C:
		case <-b.closing:
			timer.Stop()
			return ErrClosed
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// batchLen returns how many queued payloads the next commit takes.
func (b *Buffer) batchLen() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return min(b.qlen, b.opts.MaxBatch)
}

// commit writes the first n queued payloads, with their states and the new head, in one
// transaction. On success it releases them from the queue and wakes Wait and Flush; on failure
// they stay queued, first in line.
func (b *Buffer) commit(n int) (err error) {
	b.mu.Lock()
	start := b.qhead
	b.mu.Unlock()

	tx, err := b.db.Begin(true)
	if err != nil {
		b.countFailure()
		return dbErr(err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
			b.countFailure()
		}
	}()
	entries := tx.Bucket(bucketEntries)
	entries.FillPercent = 1.0 // keys only ever grow: full pages, no splits in the middle
	state := tx.Bucket(bucketState)
	seq := b.head.Load() // only this goroutine stores head
	for i := range n {
		it := &b.ring[(start+i)%len(b.ring)]
		seq++
		binary.BigEndian.PutUint64(b.key[:], seq) // bbolt copies keys
		if err := entries.Put(b.key[:], it.val); err != nil {
			return fmt.Errorf("put entry %d: %w", seq, err)
		}
		for _, s := range it.states {
			if s.Value == nil {
				err = state.Delete([]byte(s.Key))
			} else {
				err = state.Put([]byte(s.Key), s.Value)
			}
			if err != nil {
				return fmt.Errorf("put state %q with entry %d: %w", s.Key, seq, err)
			}
		}
	}
	// bbolt keeps value slices until the commit: headVal is not touched again before then.
	binary.BigEndian.PutUint64(b.headVal[:], seq)
	if err := tx.Bucket(bucketMeta).Put(keyHead, b.headVal[:]); err != nil {
		return fmt.Errorf("put head %d: %w", seq, err)
	}
	if b.beforeCommit != nil {
		if err := b.beforeCommit(); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return dbErr(err) // Commit rolls back itself; the deferred Rollback is a no-op
	}

	for i := range n {
		b.ring[(start+i)%len(b.ring)] = item{} // let the payloads go
	}
	b.mu.Lock()
	b.qhead = (b.qhead + n) % len(b.ring)
	b.qlen -= n
	b.committed += uint64(n)
	b.commits++
	b.head.Store(seq)
	b.broadcastLocked()
	b.mu.Unlock()
	return nil
}

func (b *Buffer) countFailure() {
	b.mu.Lock()
	b.commitFailures++
	b.mu.Unlock()
}

// Flush blocks until every payload accepted by Append before the call is committed, or ctx ends
// (returning ctx's error), or no commit can come any more because Run returned or Close was
// called (returning ErrClosed). It keeps waiting while commits fail and are retried.
func (b *Buffer) Flush(ctx context.Context) error {
	b.mu.Lock()
	target := b.appended
	for b.committed < target {
		if b.closed || b.run == runDone {
			b.mu.Unlock()
			return ErrClosed
		}
		ch := b.notify
		b.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		b.mu.Lock()
	}
	b.mu.Unlock()
	return nil
}

// Wait blocks until Head() > after, or ctx ends (returning ctx's error), or no commit can come any
// more because Run returned or Close was called (returning ErrClosed). Any number of goroutines
// may wait.
func (b *Buffer) Wait(ctx context.Context, after uint64) error {
	for {
		b.mu.Lock()
		if b.head.Load() > after {
			b.mu.Unlock()
			return nil
		}
		if b.closed || b.run == runDone {
			b.mu.Unlock()
			return ErrClosed
		}
		ch := b.notify
		b.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
