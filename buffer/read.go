package buffer

import (
	"encoding/binary"
	"fmt"
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
	tx, err := b.db.Begin(false)
	if err != nil {
		return fmt.Errorf("read buffer file %s: %w", b.path, dbErr(err))
	}
	defer func() { _ = tx.Rollback() }()
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
// cursor does nothing (the cursor never goes backwards); an Ack beyond the last committed entry is
// an error. Safe for concurrent use; Acks are serialized.
func (b *Buffer) Ack(through uint64) error {
	b.ackMu.Lock()
	defer b.ackMu.Unlock()
	if through <= b.cursor.Load() {
		return nil
	}
	err := b.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		head, _ := u64(meta.Get(keyHead))
		cursor, _ := u64(meta.Get(keyCursor))
		if through > head {
			return fmt.Errorf("seq %d is beyond head %d", through, head)
		}
		if through <= cursor {
			return nil
		}
		// The stored seqs are exactly cursor+1 … head, so deleting by key finds every one.
		entries := tx.Bucket(bucketEntries)
		var k [8]byte
		for seq := cursor + 1; seq <= through; seq++ {
			binary.BigEndian.PutUint64(k[:], seq)
			if err := entries.Delete(k[:]); err != nil {
				return fmt.Errorf("delete entry %d: %w", seq, err)
			}
		}
		return meta.Put(keyCursor, be64(through))
	})
	if err != nil {
		return fmt.Errorf("ack buffer file %s: %w", b.path, dbErr(err))
	}
	b.cursor.Store(through)
	return nil
}

// State returns a copy of the named state's value, or nil if it is absent.
func (b *Buffer) State(key string) ([]byte, error) {
	if b.isClosed() {
		return nil, ErrClosed
	}
	var val []byte
	err := b.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketState).Get([]byte(key)); v != nil {
			val = append(make([]byte, 0, len(v)), v...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read state %q from buffer file %s: %w", key, b.path, dbErr(err))
	}
	return val, nil
}

// SetState writes (or, with a nil value, deletes) a named state in a write transaction of its
// own, synced like a commit. To keep a state in step with appended payloads, pass it to Append
// instead. Safe for concurrent use.
func (b *Buffer) SetState(key string, value []byte) error {
	if err := checkStates([]State{{Key: key, Value: value}}); err != nil {
		return fmt.Errorf("set state in buffer file %s: %w", b.path, err)
	}
	if b.isClosed() {
		return ErrClosed
	}
	err := b.db.Update(func(tx *bolt.Tx) error {
		st := tx.Bucket(bucketState)
		if value == nil {
			return st.Delete([]byte(key))
		}
		return st.Put([]byte(key), value)
	})
	if err != nil {
		return fmt.Errorf("set state %q in buffer file %s: %w", key, b.path, dbErr(err))
	}
	return nil
}
