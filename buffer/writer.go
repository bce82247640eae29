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
// payload and the states' values as soon as Append returns. A payload over the limit is refused
// with an error wrapping ErrTooLarge.
//
// Append allocates once per call (the copy of payload), plus copies of the states when given.
func (b *Buffer) Append(payload []byte, states ...State) error {
	return b.append(payload, states, false)
}

// AppendDroppable is Append for payloads that may be given up first when the disk stalls
// (telemetry): it is refused with ErrQueueFull as soon as Options.DroppableQueueLen payloads are
// waiting (by default 3/4 of the queue), so the rest of the queue stays for Append (KPI records,
// events). Once accepted, its payload is an entry like any other.
func (b *Buffer) AppendDroppable(payload []byte) error {
	return b.append(payload, nil, true)
}

func (b *Buffer) append(payload []byte, states []State, droppable bool) error {
	if b.readOnly {
		return ErrReadOnly
	}
	limit := maxPayload
	if b.lim != nil {
		limit = b.lim.maxPayload
	}
	if len(payload) > limit {
		return fmt.Errorf("append %d-byte payload to buffer file %s: over the limit of %d bytes: %w", len(payload), b.path, limit, ErrTooLarge)
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
	if droppable && b.qlen >= b.opts.DroppableQueueLen {
		b.queueFullDroppable++
		b.mu.Unlock()
		return ErrQueueFull
	}
	if b.qlen == len(b.ring) {
		b.queueFullAppend++
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
// with backoff, the batch kept; Stats counts the failures. Run applies Options.MaxBytes and
// Options.MaxAge in its commits (and MaxAge between them too), and calls Options.OnDrop and
// Options.OnClockJump.
//
// When ctx ends, Run stops accepting appends (Append returns ErrClosed from then on), commits
// everything still queued and returns nil. If those last commits keep failing it gives up after a
// few attempts and returns an error saying how many payloads were lost. It returns ErrClosed if
// Close is called while it runs, and an error at once if another Run is running or has run.
func (b *Buffer) Run(ctx context.Context) error {
	if b.readOnly {
		return ErrReadOnly
	}
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

	b.txMu.Lock()
	jump := b.pendJump // found by Open
	b.pendJump = nil
	b.txMu.Unlock()
	if jump != nil {
		b.announce(report{jump: jump})
	}

	timer := time.NewTimer(time.Hour) // one timer, reused: waiting allocates nothing per commit
	timer.Stop()
	tick := time.NewTicker(b.tickPeriod()) // MaxAge and the clock between commits
	defer tick.Stop()
	var last time.Time // start of the last commit
	backoff := minBackoff
	for {
		select {
		case <-ctx.Done():
			return b.drain(timer)
		case <-b.closing:
			return ErrClosed
		case <-tick.C:
			if _, err := b.write(0); err != nil && !b.isClosed() {
				b.log.Warn("buffer maintenance commit failed; next try at the next tick", "file", b.path, "err", err)
			}
			continue
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
			if _, err := b.write(n); err != nil {
				if b.isClosed() {
					return ErrClosed
				}
				if errors.Is(err, errNoRoom) {
					b.log.Warn("buffer commit postponed", "file", b.path, "payloads", n, "retry_in", backoff, "err", err)
				} else {
					b.log.Error("buffer commit failed; retrying", "file", b.path, "payloads", n, "retry_in", backoff, "err", err)
				}
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

// tickPeriod is how often Run checks MaxAge and the clock between commits.
func (b *Buffer) tickPeriod() time.Duration {
	if b.opts.MaxAge > 0 {
		return min(max(b.opts.MaxAge/10, time.Second), time.Minute)
	}
	return time.Minute
}

// write runs one writer commit of up to n queued payloads (n == 0: only what MaxAge and a clock
// jump need, if anything), then the test hook and the callbacks. It returns how many payloads
// it committed.
func (b *Buffer) write(n int) (int, error) {
	b.commitStart.Store(time.Now().UnixNano())
	done, rep, err := b.commit(n)
	b.commitStart.Store(0)
	if err == nil && rep.committed && b.afterCommit != nil {
		b.afterCommit()
	}
	b.announce(rep)
	return done, err
}

// announce logs and calls the callbacks for what a commit reports. Run's goroutine only, with
// no lock held, so the callbacks may call Append.
func (b *Buffer) announce(rep report) {
	if rep.jump != nil {
		j := *rep.jump
		b.log.Warn("clock jump detected; entries appended before it are exempt from max_age",
			"file", b.path, "wall", j.Wall, "monotonic", j.Monotonic, "age_floor", j.AgeFloor)
		if b.opts.OnClockJump != nil {
			b.opts.OnClockJump(j)
		}
	}
	for _, d := range rep.drops {
		if d.Count > 0 && b.opts.OnDrop != nil {
			b.opts.OnDrop(d)
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
		_, err := b.write(n)
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
// more because Run returned or Close was called (returning ErrClosed) or the buffer is
// read-only (ErrReadOnly). Any number of goroutines may wait.
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
		if b.readOnly {
			b.mu.Unlock()
			return ErrReadOnly
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
