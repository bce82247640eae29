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
// migrate, whenever a bucket, a key or an encoding changes in a way older code would misread. An
// optional key older code may ignore (meta age_floor: code without MaxAge has nothing to exempt)
// needs no bump, which would only make older binaries refuse the file.
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
	// keyAgeFloor (optional, 8-byte big-endian seq): entries up to it were stamped before a
	// detected clock jump and are never dropped by age. Absent means 0.
	keyAgeFloor = []byte("age_floor")
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
	// Now stamps appends (the stamp MaxAge measures) and names moved-aside files; nil means
	// time.Now. Only its wall-clock reading is used; clock jumps are detected against the
	// monotonic clock (see the package Caveats).
	Now func() time.Time

	// MaxBytes bounds the size of the file in bytes; zero means no limit, otherwise it must be at
	// least MinMaxBytes. The oldest entries are dropped (in the commit that needs their room,
	// announced through OnDrop) so that the file never grows beyond it; how much of it holds
	// entries is in the package Caveats. A file already larger (written without a limit, or
	// with a larger one) keeps its size, bbolt never shrinks a file, until CompactFile. With a
	// limit, Append refuses payloads over MaxBytes/128 (ErrTooLarge).
	MaxBytes int64
	// MaxAge drops entries appended longer ago than this, oldest first; zero means no limit.
	// Checked at every commit and, between commits, at least every MaxAge/10 (1 s to 1 min).
	// Never across a detected clock jump: see the package Caveats.
	MaxAge time.Duration
	// DroppableQueueLen is the queue length from which AppendDroppable is refused with
	// ErrQueueFull, so that Append always finds room first; zero means 3/4 of QueueLen. It must
	// not exceed QueueLen.
	DroppableQueueLen int
	// OnDrop, when set, is called for every range of entries dropped by MaxBytes or MaxAge,
	// from Run's goroutine, after the commit that made the drop durable. It must not block (the
	// writer commits nothing meanwhile) and must not call Flush, Wait or Close; it may call
	// Append, AppendDroppable and Stats, which never block.
	OnDrop func(d Drop)
	// OnClockJump, when set, is called, like OnDrop from Run's goroutine, for every clock jump
	// the buffer detects (including one found at Open). The same rules apply.
	OnClockJump func(j ClockJump)

	// mono, when set (by tests), replaces the monotonic clock: the time since some fixed point.
	mono func() time.Duration
}

// MinMaxBytes is the least non-zero Options.MaxBytes: below it, the room one commit needs is
// a large part of the file.
const MinMaxBytes = 1 << 20

// Drop reasons, in Drop.Reason.
const (
	DropMaxBytes = "max_bytes"
	DropMaxAge   = "max_age"
)

// Drop describes a contiguous range of entries the buffer dropped unread. Their seqs are gone
// for good (never reused); the cursor moved past them in the same transaction, so a reader
// reading after the cursor never waits for them.
type Drop struct {
	// Reason is DropMaxBytes or DropMaxAge.
	Reason string
	// First and Last are the seqs of the first and last dropped entry (inclusive).
	First, Last uint64
	// Count is Last-First+1.
	Count uint64
	// Bytes is the size of the dropped payloads.
	Bytes int64
}

// ClockJump describes a jump of the wall clock (Options.Now) the buffer detected: between two
// readings, the wall clock moved by Wall and the monotonic clock by Monotonic, and the two
// differ by more than the threshold (see the package Caveats). At Open, a newest entry stamped
// in the future is a jump back: Wall is then the time from that stamp to now (negative) and
// Monotonic is zero (there is no monotonic reading across a restart).
type ClockJump struct {
	Wall, Monotonic time.Duration
	// AgeFloor is the seq up to which entries were (or may have been) stamped before the jump:
	// MaxAge never drops them.
	AgeFloor uint64
}

// Jump returns how far the wall clock stepped: Wall - Monotonic.
func (j ClockJump) Jump() time.Duration { return j.Wall - j.Monotonic }

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
	if o.MaxBytes != 0 && o.MaxBytes < MinMaxBytes {
		errs = append(errs, fmt.Errorf("buffer options: MaxBytes %d is below the minimum of %d (1 MiB)", o.MaxBytes, MinMaxBytes))
	}
	if o.MaxAge < 0 {
		errs = append(errs, fmt.Errorf("buffer options: MaxAge %v is negative", o.MaxAge))
	}
	queueLen := o.QueueLen
	if queueLen == 0 {
		queueLen = defaultQueueLen
	}
	if o.DroppableQueueLen < 0 || o.DroppableQueueLen > queueLen {
		errs = append(errs, fmt.Errorf("buffer options: DroppableQueueLen %d is not within 0 to QueueLen (%d)", o.DroppableQueueLen, queueLen))
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
	if o.DroppableQueueLen == 0 {
		o.DroppableQueueLen = max(1, o.QueueLen*3/4)
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
	// Cursor is the last acknowledged or dropped seq.
	Cursor uint64
	// Entries is the number of stored entries: Head - Cursor.
	Entries uint64
	// FileBytes is the size of the file; bbolt never shrinks it. Zero if it could not be read.
	FileBytes int64
	// QueueLen is the number of payloads accepted by Append and not yet committed.
	QueueLen int
	// Appended counts payloads accepted by Append and AppendDroppable.
	Appended uint64
	// QueueFull counts appends refused with ErrQueueFull: QueueFullAppend + QueueFullDroppable.
	QueueFull uint64
	// QueueFullAppend counts Appends refused with ErrQueueFull (the queue was full).
	QueueFullAppend uint64
	// QueueFullDroppable counts AppendDroppables refused with ErrQueueFull (the queue held
	// Options.DroppableQueueLen payloads or more).
	QueueFullDroppable uint64
	// Bytes is the size of the stored payloads (entries Cursor+1 … Head).
	Bytes int64
	// OldestAge is how long ago, by Options.Now, the oldest stored entry was appended; zero when
	// there is none. After a clock jump it is off by the jump until that entry is gone.
	OldestAge time.Duration
	// Dropped counts entries dropped unread: DroppedMaxBytes + DroppedMaxAge.
	Dropped uint64
	// DroppedBytes is the size of the payloads of the Dropped entries.
	DroppedBytes int64
	// DroppedMaxBytes counts entries dropped to keep the file within Options.MaxBytes.
	DroppedMaxBytes uint64
	// DroppedMaxAge counts entries dropped because they were older than Options.MaxAge.
	DroppedMaxAge uint64
	// ClockJumps counts clock jumps detected (see ClockJump).
	ClockJumps uint64
	// AgeFloor is the seq up to which entries are exempt from MaxAge (stamped before a clock
	// jump).
	AgeFloor uint64
	// Committed counts payloads the writer committed.
	Committed uint64
	// Commits counts the writer's successful transactions.
	Commits uint64
	// Stalls counts times the writer postponed a commit because the file was at
	// Options.MaxBytes and the pages it could reuse were held by a read transaction (WriteTo).
	Stalls uint64
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
	path     string
	opts     Options
	log      *slog.Logger
	db       *bolt.DB
	readOnly bool    // OpenReadOnly: nothing writes
	lim      *limits // nil without Options.MaxBytes

	epoch     string
	movedTo   string
	moveCause error

	head   atomic.Uint64 // stored by the writer under mu, so Wait can check it and take notify atomically
	cursor atomic.Uint64 // stored under txMu (Ack, and the writer when it drops)

	// txMu serializes the buffer's write transactions (the writer's commits, Ack, SetState), so
	// the cursor in memory follows the file's and bbolt's free-page counts, which it updates when
	// a write transaction closes, are current when the writer checks its room (limit.go).
	txMu sync.Mutex

	// Read transactions started and ended (ReadAfter, State, WriteTo): the writer learns from
	// them whether one was open when it began (see beginWrite).
	readsStarted, readsEnded atomic.Uint64
	// commitStart is when the writer's commit attempt in progress began (UnixNano), 0 between
	// attempts; backups counts WriteTo calls in progress. Writer reports both.
	commitStart atomic.Int64
	backups     atomic.Int32

	wake    chan struct{} // capacity 1: Append tells the writer there is work
	closing chan struct{} // closed by Close

	// mu guards the queue ring and the fields up to the blank line. Producers write ring slots
	// only in the free region; the writer reads the first n queued slots without holding mu,
	// which is safe because they stay counted in qlen (so no producer reuses them) until the
	// writer releases them under mu after the commit.
	mu                 sync.Mutex
	ring               []item
	qhead, qlen        int
	appended           uint64
	committed          uint64
	queueFullAppend    uint64
	queueFullDroppable uint64
	commits            uint64
	commitFailures     uint64
	stalls             uint64
	bytes              int64 // payload bytes stored
	oldest             int64 // append stamp (unix ns) of entry Cursor+1, when there is one
	dropped            [2]uint64
	droppedBytes       int64
	clockJumps         uint64
	ageFloor           uint64        // entries up to it are exempt from MaxAge
	notify             chan struct{} // closed and replaced at each commit, when Run ends and on Close
	run                runState
	stopping           bool // Run drains or has returned: Append gets ErrClosed
	closed             bool

	// Writer-only (Run's goroutine; Open before it): scratch, so a commit allocates nothing per
	// entry itself, the clock readings jumps are measured against, the sizes of the last
	// entries (limit.go), and what is still to be written or announced.
	key        [8]byte
	headVal    [8]byte
	cursorVal  [8]byte
	floorVal   [8]byte
	lastWall   time.Time
	lastMono   time.Duration
	tail       tailSizes
	maxElem    int64 // largest entry element (bytes) stored since Open: bounds a leaf
	stateElem  int64 // largest state element stored since Open (txMu)
	stateBytes int64 // bytes of the state bucket's elements (txMu)
	floorDirty bool  // ageFloor changed and is not yet in the file
	pendJump   *ClockJump

	mono func() time.Duration // the monotonic clock: Options.mono, or time since Open

	// Test hooks, set before Run. beforeCommit runs just before the writer commits; an error
	// from it fails the commit as a failed write would. afterCommit runs after every
	// successful commit of the writer.
	beforeCommit func() error
	afterCommit  func()
	// afterPlan gets, after each commit with MaxBytes, the pages the commit was allowed and
	// the room, the pages bbolt allocated, and its high-water mark.
	afterPlan func(need, room, allocated, hwm int64)
}

// Epoch returns the random id (16 hex characters) created with the file. It never changes for
// the file's life; a moved-aside file's successor gets a new one, and seqs start again at 1.
func (b *Buffer) Epoch() string { return b.epoch }

// Head returns the seq of the last committed entry (0 when none was ever committed).
func (b *Buffer) Head() uint64 { return b.head.Load() }

// Cursor returns the last acknowledged seq, or the last dropped one if the limits dropped
// entries after it.
func (b *Buffer) Cursor() uint64 { return b.cursor.Load() }

// MovedAside reports whether Open found an unreadable file and moved it aside: path is where the
// old file now is and cause (a *CorruptError) says what was wrong. path is "" when Open did not.
func (b *Buffer) MovedAside() (path string, cause error) { return b.movedTo, b.moveCause }

// WriterState is what a liveness check needs of the writer: whether Run has ended, and whether it
// is stuck in one commit rather than slow or refused (failed and postponed commits are short
// attempts, retried).
type WriterState struct {
	// Stopped is true once Run has returned or the buffer is closed: nothing commits any more.
	// Before Run starts it is false.
	Stopped bool
	// CommitSince is when the commit attempt in progress began; zero between attempts.
	CommitSince time.Time
	// Backups is the number of WriteTo calls in progress. A backup holds a read transaction
	// open for as long as its writer takes, and a commit that must grow the file waits for it:
	// a long commit then is the backup's doing.
	Backups int
}

// Writer returns the writer's state. It takes no lock but mu, briefly.
func (b *Buffer) Writer() WriterState {
	b.mu.Lock()
	w := WriterState{Stopped: b.run == runDone || b.closed}
	b.mu.Unlock()
	if ns := b.commitStart.Load(); ns != 0 {
		w.CommitSince = time.Unix(0, ns)
	}
	w.Backups = int(b.backups.Load())
	return w
}

// Stats returns a snapshot of the counters. It takes no transaction: one mutex and one stat of
// the file.
func (b *Buffer) Stats() Stats {
	now := b.opts.Now()
	b.mu.Lock()
	s := Stats{
		QueueLen:           b.qlen,
		Appended:           b.appended,
		QueueFull:          b.queueFullAppend + b.queueFullDroppable,
		QueueFullAppend:    b.queueFullAppend,
		QueueFullDroppable: b.queueFullDroppable,
		Bytes:              b.bytes,
		Dropped:            b.dropped[reasonMaxBytes] + b.dropped[reasonMaxAge],
		DroppedBytes:       b.droppedBytes,
		DroppedMaxBytes:    b.dropped[reasonMaxBytes],
		DroppedMaxAge:      b.dropped[reasonMaxAge],
		ClockJumps:         b.clockJumps,
		AgeFloor:           b.ageFloor,
		Committed:          b.committed,
		Commits:            b.commits,
		Stalls:             b.stalls,
		CommitFailures:     b.commitFailures,
	}
	oldest := b.oldest
	// Under mu, with the counters: the writer and Ack store head and cursor under mu too, so
	// Entries, Bytes and OldestAge describe the same entries.
	s.Cursor = b.cursor.Load()
	s.Head = b.head.Load()
	b.mu.Unlock()
	if s.Head < s.Cursor {
		// ReadAfter and Ack see a commit as soon as bbolt has it, a moment before the writer
		// stores the new head: an Ack can get there first.
		s.Head = s.Cursor
	}
	s.Entries = s.Head - s.Cursor
	if s.Entries > 0 {
		s.OldestAge = max(0, now.Sub(time.Unix(0, oldest)))
	}
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
