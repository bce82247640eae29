package buffer

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// formatVersion is the layout this code writes and the newest it reads. Bump it, and teach Open to
// migrate, whenever a bucket, a key or an encoding changes.
const formatVersion = 1

const (
	defaultMaxBatch = 1000
	defaultQueueLen = 10000

	// lockTimeout bounds how long Open waits for bbolt's file lock, so that a second process on
	// the same file fails with a clear error instead of hanging.
	lockTimeout = time.Second

	// stampLen is the append time (unix nanoseconds, big-endian) in front of every stored payload.
	stampLen = 8

	// maxPayload keeps a stored value under bbolt's limit: a value bbolt refuses would fail every
	// retry of its commit and wedge the writer, so Append refuses it instead.
	maxPayload = bolt.MaxValueSize - stampLen
)

// Bucket and key names of the file layout (format_version 1). Never modified.
var (
	bucketMeta    = []byte("meta")
	bucketEntries = []byte("entries")
	bucketState   = []byte("state")

	keyFormat = []byte("format_version")
	keyEpoch  = []byte("epoch")
	keyHead   = []byte("head")
	keyCursor = []byte("cursor")
)

// Options tune a Buffer. The zero value is ready to use.
type Options struct {
	// MaxBatch bounds the payloads one commit takes; zero means 1000.
	MaxBatch int
	// QueueLen bounds the payloads waiting for a commit, counting those of the commit in
	// progress; zero means 10000. Append never blocks: when full it returns ErrQueueFull. Open
	// allocates the queue's slots (48 bytes each) at once.
	QueueLen int
	// CommitInterval is the least time between the starts of two commits (saves fsyncs on
	// flash); zero means commit as soon as the previous commit ends (natural group commit:
	// whatever producers queued during a commit goes into the next one).
	CommitInterval time.Duration
	// NoSync skips fsync on commit: a power loss may lose the last commits (a crash of the
	// process alone loses nothing the OS already has). See the package Caveats.
	NoSync bool
	// Now stamps appends (for future age limits) and names moved-aside files; nil means time.Now.
	Now func() time.Time
}

func (o Options) validate() error {
	var errs []error
	if o.MaxBatch < 0 {
		errs = append(errs, fmt.Errorf("buffer options: MaxBatch %d is negative", o.MaxBatch))
	}
	if o.QueueLen < 0 {
		errs = append(errs, fmt.Errorf("buffer options: QueueLen %d is negative", o.QueueLen))
	}
	if o.CommitInterval < 0 {
		errs = append(errs, fmt.Errorf("buffer options: CommitInterval %v is negative", o.CommitInterval))
	}
	return errors.Join(errs...)
}

func (o Options) withDefaults() Options {
	if o.MaxBatch == 0 {
		o.MaxBatch = defaultMaxBatch
	}
	if o.QueueLen == 0 {
		o.QueueLen = defaultQueueLen
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// State is a named value written in the same transaction as the payload it is appended with, e.g.
// KPI accumulators that must never disagree with the records already stored. A nil Value deletes
// the key.
type State struct {
	Key   string
	Value []byte
}

// Stats is a snapshot of a Buffer's counters. Counters count since Open.
type Stats struct {
	// Head is the seq of the last committed entry (0 when none ever).
	Head uint64
	// Cursor is the last acknowledged seq.
	Cursor uint64
	// Entries is the number of stored entries: Head - Cursor.
	Entries uint64
	// FileBytes is the size of the file; bbolt never shrinks it. Zero if it could not be read.
	FileBytes int64
	// QueueLen is the number of payloads accepted by Append and not yet committed.
	QueueLen int
	// Appended counts payloads accepted by Append.
	Appended uint64
	// QueueFull counts Appends refused with ErrQueueFull.
	QueueFull uint64
	// Committed counts payloads the writer committed.
	Committed uint64
	// Commits counts the writer's successful transactions.
	Commits uint64
	// CommitFailures counts the writer's failed transactions (each retried, nothing lost).
	CommitFailures uint64
}

// item is one accepted append waiting in the ring: val is the stored value (stamp + payload),
// owned by the buffer from Append on.
type item struct {
	val    []byte
	states []State
}

type runState int

const (
	runIdle runState = iota
	runRunning
	runDone
)

// Buffer is a durable FIFO of opaque payloads in one bbolt file. All methods are safe for
// concurrent use; Run must run in exactly one goroutine for appends to be committed.
//
// Invariants, in the file and in memory: entries are keyed by seq; the stored seqs are exactly
// Cursor()+1 … Head(), gap-free; Cursor() <= Head(); Head() never decreases, even when every entry
// is acknowledged, so a seq is never reused within an Epoch().
type Buffer struct {
	path string
	opts Options
	log  *slog.Logger
	db   *bolt.DB

	epoch     string
	movedTo   string
	moveCause error

	head   atomic.Uint64 // stored by the writer under mu, so Wait can check it and take notify atomically
	cursor atomic.Uint64 // stored under ackMu

	ackMu sync.Mutex // serializes Acks, so the cursor in memory follows the file's

	wake    chan struct{} // capacity 1: Append tells the writer there is work
	closing chan struct{} // closed by Close

	// mu guards the queue ring and the fields up to the blank line. Producers write ring slots
	// only in the free region; the writer reads the first n queued slots without holding mu,
	// which is safe because they stay counted in qlen (so no producer reuses them) until the
	// writer releases them under mu after the commit.
	mu             sync.Mutex
	ring           []item
	qhead, qlen    int
	appended       uint64
	committed      uint64
	queueFull      uint64
	commits        uint64
	commitFailures uint64
	notify         chan struct{} // closed and replaced at each commit, when Run ends and on Close
	run            runState
	stopping       bool // Run drains or has returned: Append gets ErrClosed
	closed         bool

	// Writer-only scratch (Run's goroutine), so a commit allocates nothing per entry itself.
	key     [8]byte
	headVal [8]byte

	// beforeCommit, when set (by tests, before Run), runs just before the writer commits; an
	// error from it fails the commit as a failed write would.
	beforeCommit func() error
}

// Epoch returns the random id (16 hex characters) created with the file. It never changes for
// the file's life; a moved-aside file's successor gets a new one, and seqs start again at 1.
func (b *Buffer) Epoch() string { return b.epoch }

// Head returns the seq of the last committed entry (0 when none was ever committed).
func (b *Buffer) Head() uint64 { return b.head.Load() }

// Cursor returns the last acknowledged seq.
func (b *Buffer) Cursor() uint64 { return b.cursor.Load() }

// MovedAside reports whether Open found an unreadable file and moved it aside: path is where the
// old file now is and cause (a *CorruptError) says what was wrong. path is "" when Open did not.
func (b *Buffer) MovedAside() (path string, cause error) { return b.movedTo, b.moveCause }

// Stats returns a snapshot of the counters. It takes no transaction: one mutex and one stat of
// the file.
func (b *Buffer) Stats() Stats {
	b.mu.Lock()
	s := Stats{
		QueueLen:       b.qlen,
		Appended:       b.appended,
		QueueFull:      b.queueFull,
		Committed:      b.committed,
		Commits:        b.commits,
		CommitFailures: b.commitFailures,
	}
	b.mu.Unlock()
	s.Cursor = b.cursor.Load()
	s.Head = b.head.Load()
	if s.Head < s.Cursor {
		// ReadAfter and Ack see a commit as soon as bbolt has it, a moment before the writer
		// stores the new head: an Ack can get there first.
		s.Head = s.Cursor
	}
	s.Entries = s.Head - s.Cursor
	if fi, err := os.Stat(b.path); err == nil {
		s.FileBytes = fi.Size()
	}
	return s
}

// Close closes the bbolt file. It does not commit what is still queued: cancel Run's context and
// wait for Run to return first. If Run is still running it returns ErrClosed and what was queued
// is lost; Flush and Wait return ErrClosed. Close is safe to call twice; the second call returns
// nil.
func (b *Buffer) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	close(b.closing)
	b.broadcastLocked()
	b.mu.Unlock()
	// bbolt's Close waits for a write transaction in progress and for open read transactions.
	if err := b.db.Close(); err != nil {
		return fmt.Errorf("close buffer file %s: %w", b.path, err)
	}
	return nil
}

// broadcastLocked wakes every Wait and Flush. b.mu must be held.
func (b *Buffer) broadcastLocked() {
	close(b.notify)
	b.notify = make(chan struct{})
}

// isClosed reports whether Close was called.
func (b *Buffer) isClosed() bool {
	select {
	case <-b.closing:
		return true
	default:
		return false
	}
}

// dbErr maps bbolt's "database not open", which a method racing Close may see, to ErrClosed.
func dbErr(err error) error {
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}
