package buffer

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"

	bolt "go.etcd.io/bbolt"
)

// ReadAfter calls fn for the committed entries with seq > after, in seq order, at most max of
// them (max must be at least 1). An error from fn stops the read and is returned as is.
//
// fn runs inside a read transaction: payload is valid only until fn returns (copy what you keep)
// and must not be modified. fn must be quick, since a long read transaction stalls the writer when
// the file grows, and must not call the Buffer's methods (Ack, Flush, ... may wait for this very
// transaction to end).
func (b *Buffer) ReadAfter(after uint64, max int, fn func(seq uint64, payload []byte) error) error {
	if max < 1 {
		return fmt.Errorf("read buffer file %s: max %d is less than 1", b.path, max)
	}
	if after == math.MaxUint64 {
		return nil
	}
	if b.isClosed() {
		return ErrClosed
	}
	tx, err := b.beginRead()
	if err != nil {
		return fmt.Errorf("read buffer file %s: %w", b.path, dbErr(err))
	}
	defer b.endRead(tx)
	var from [8]byte
	binary.BigEndian.PutUint64(from[:], after+1)
	c := tx.Bucket(bucketEntries).Cursor()
	n := 0
	for k, v := c.Seek(from[:]); k != nil && n < max; k, v = c.Next() {
		if err := fn(binary.BigEndian.Uint64(k), v[stampLen:]); err != nil {
			return err
		}
		n++
	}
	return nil
}

// Ack records that every entry up to and including seq through was delivered: the cursor moves to
// through and those entries are deleted, in one write transaction, so the file stays bounded in
// steady state (bbolt reuses the freed pages; it never shrinks the file). An Ack at or before the
// cursor does nothing (the cursor never goes backwards, and it moves by itself past entries the
// limits drop); an Ack beyond the last committed entry is an error. With Options.MaxBytes, an
// Ack that needs pages the file has none of (a read transaction such as WriteTo holds them, see
// the package Caveats) fails and changes nothing: try again later. Safe for concurrent use;
// Acks are serialized.
func (b *Buffer) Ack(through uint64) error {
	if b.readOnly {
		return ErrReadOnly
	}
	b.txMu.Lock()
	defer b.txMu.Unlock()
	if through <= b.cursor.Load() {
		return nil
	}
	if b.isClosed() {
		return ErrClosed
	}
	freed, oldest, err := b.ack(through)
	if err != nil {
		return fmt.Errorf("ack buffer file %s: %w", b.path, dbErr(err))
	}
	b.mu.Lock()
	b.cursor.Store(through)
	b.bytes -= freed
	b.oldest = oldest
	b.mu.Unlock()
	return nil
}

// ack runs Ack's transaction and returns the payload bytes it deleted and the stamp of the entry
// now first (0 if none). Under txMu.
func (b *Buffer) ack(through uint64) (freed, oldest int64, err error) {
	var tx *bolt.Tx
	for attempt := 0; ; attempt++ {
		var free int64
		var quiet bool
		tx, free, _, quiet, err = b.beginWrite()
		if err != nil {
			return 0, 0, err
		}
		if b.lim == nil || b.lim.ackPages(b.maxElem) <= b.lim.hwmFile-tx.Size()/b.lim.pageSize+free {
			break
		}
		_ = tx.Rollback() // bbolt releases what it can and counts it: see commit
		if quiet || attempt > 0 {
			return 0, 0, errNoRoom
		}
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	meta := tx.Bucket(bucketMeta)
	head, _ := u64(meta.Get(keyHead))
	cursor, _ := u64(meta.Get(keyCursor))
	if through > head {
		return 0, 0, fmt.Errorf("seq %d is beyond head %d", through, head)
	}
	// The stored seqs are exactly cursor+1 … head, so deleting by key finds every one.
	entries := tx.Bucket(bucketEntries)
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], cursor+1)
	c := entries.Cursor()
	for key, v := c.Seek(k[:]); key != nil && binary.BigEndian.Uint64(key) <= through; key, v = c.Next() {
		freed += int64(len(v) - stampLen)
	}
	for seq := cursor + 1; seq <= through; seq++ {
		binary.BigEndian.PutUint64(k[:], seq)
		if err := entries.Delete(k[:]); err != nil {
			return 0, 0, fmt.Errorf("delete entry %d: %w", seq, err)
		}
	}
	if _, v := entries.Cursor().First(); v != nil {
		oldest = int64(binary.BigEndian.Uint64(v))
	}
	if err := meta.Put(keyCursor, be64(through)); err != nil {
		return 0, 0, err
	}
	return freed, oldest, tx.Commit()
}

// State returns a copy of the named state's value, or nil if it is absent.
func (b *Buffer) State(key string) ([]byte, error) {
	if b.isClosed() {
		return nil, ErrClosed
	}
	var val []byte
	tx, err := b.beginRead()
	if err == nil {
		if v := tx.Bucket(bucketState).Get([]byte(key)); v != nil {
			val = append(make([]byte, 0, len(v)), v...)
		}
		b.endRead(tx)
	}
	if err != nil {
		return nil, fmt.Errorf("read state %q from buffer file %s: %w", key, b.path, dbErr(err))
	}
	return val, nil
}

// SetState writes (or, with a nil value, deletes) a named state in a write transaction of its
// own, synced like a commit. To keep a state in step with appended payloads, pass it to Append
// instead. Safe for concurrent use.
func (b *Buffer) SetState(key string, value []byte) error {
	if b.readOnly {
		return ErrReadOnly
	}
	if err := checkStates([]State{{Key: key, Value: value}}); err != nil {
		return fmt.Errorf("set state in buffer file %s: %w", b.path, err)
	}
	if b.isClosed() {
		return ErrClosed
	}
	b.txMu.Lock()
	defer b.txMu.Unlock()
	var delta int64
	err := b.db.Update(func(tx *bolt.Tx) error {
		st := tx.Bucket(bucketState)
		delta = stateDelta(st, key, value)
		if value == nil {
			return st.Delete([]byte(key))
		}
		return st.Put([]byte(key), value)
	})
	if err != nil {
		return fmt.Errorf("set state %q in buffer file %s: %w", key, b.path, dbErr(err))
	}
	b.stateElem = max(b.stateElem, stateElemSize(key, value))
	b.stateBytes += delta
	return nil
}

// WriteTo writes a consistent copy of the file, as of its last commit, to w: a hot backup of a
// running buffer, which Open (or OpenReadOnly) opens like the original. It returns the bytes
// written. It holds a read transaction for its whole duration: meanwhile bbolt cannot reuse
// the pages commits free, nor remap the file to grow it, so the writer may stall, and with
// Options.MaxBytes a file at its limit makes commits wait (Stats.Stalls) until WriteTo returns.
func (b *Buffer) WriteTo(w io.Writer) (int64, error) {
	if b.isClosed() {
		return 0, ErrClosed
	}
	b.backups.Add(1)
	defer b.backups.Add(-1)
	tx, err := b.beginRead()
	if err != nil {
		return 0, fmt.Errorf("back up buffer file %s: %w", b.path, dbErr(err))
	}
	defer b.endRead(tx)
	n, err := tx.WriteTo(w)
	if err != nil {
		return n, fmt.Errorf("back up buffer file %s: %w", b.path, err)
	}
	return n, nil
}

// beginRead begins a read transaction, counted for beginWrite.
func (b *Buffer) beginRead() (*bolt.Tx, error) {
	b.readsStarted.Add(1)
	tx, err := b.db.Begin(false)
	if err != nil {
		b.readsEnded.Add(1)
		return nil, err
	}
	return tx, nil
}

// endRead ends a read transaction from beginRead.
func (b *Buffer) endRead(tx *bolt.Tx) {
	_ = tx.Rollback()
	b.readsEnded.Add(1)
}
