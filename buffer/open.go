package buffer

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Open opens the buffer file at path, creating it (mode 0600; the directory must exist) when it
// does not exist. It starts no goroutine: call Run for appends to be committed.
//
// A file whose format_version is newer than this code knows is refused with an error wrapping
// ErrNewerFormat and left byte for byte untouched. A file bbolt cannot open, whose pages are
// damaged or that lacks the buffer's meta data is moved aside to "<path>.corrupt-<UTC time>",
// logged at Error and replaced by a fresh file with a new epoch; MovedAside reports it. A file
// another process (or another Open in this one) holds makes Open fail after about a second with
// an error wrapping ErrInUse. Checking an existing file reads all of it.
//
// If the newest entry is stamped in the future (by Options.Now, beyond the jump threshold), the
// clock went back while the file was closed: Open exempts every entry from MaxAge and Run
// reports the jump to Options.OnClockJump.
//
// A nil log discards.
func Open(path string, opts Options, log *slog.Logger) (*Buffer, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for attempt := 0; ; attempt++ {
		b, err := open(path, opts, log)
		if errors.Is(err, errReplaced) && attempt == 0 {
			continue // CompactFile renamed a new file over it while we waited for the lock
		}
		return b, err
	}
}

// errReplaced: the file at the path is not the one Open locked.
var errReplaced = errors.New("the file was replaced while it was being opened")

func open(path string, opts Options, log *slog.Logger) (*Buffer, error) {
	b := newBuffer(path, opts, log)
	if err := b.prepare(); err != nil {
		return nil, err
	}
	before, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("open buffer: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: lockTimeout,
		NoSync:  opts.NoSync,
		// The hashmap freelist allocates in constant time; the array one scans, which hurts
		// after a large Ack freed many pages.
		FreelistType: bolt.FreelistMapType,
	})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, inUseError(path, err)
		}
		return nil, fmt.Errorf("open buffer file %s: %w", path, err)
	}
	fail := func(err error) (*Buffer, error) {
		_ = db.Close()
		return nil, err
	}
	// CompactFile renames a compacted copy over the file it holds locked: if that happened
	// while bbolt waited for the lock, bbolt may hold the old file.
	if after, err := os.Stat(path); err != nil || !os.SameFile(before, after) {
		return fail(fmt.Errorf("open buffer file %s: %w", path, errReplaced))
	}
	hwm, err := b.load(db)
	if err != nil {
		return fail(err)
	}
	if opts.MaxBytes > 0 {
		fi, err := os.Stat(path)
		if err != nil {
			return fail(fmt.Errorf("open buffer: %w", err))
		}
		b.lim, err = newLimits(opts.MaxBytes, db.Info().PageSize, hwm, fi.Size())
		if err != nil {
			return fail(err)
		}
		db.AllocSize = b.lim.allocSize
		if fi.Size() > opts.MaxBytes {
			log.Warn("buffer file is larger than max_bytes (bbolt never shrinks a file): entries are kept within max_bytes, the file keeps its size until compacted",
				"file", path, "file_bytes", fi.Size(), "max_bytes", opts.MaxBytes)
		}
	}
	b.db = db
	if err := b.checkOpenClock(); err != nil {
		b.db = nil
		return fail(err)
	}
	return b, nil
}

// OpenReadOnly opens an existing buffer file for inspection (Stats, ReadAfter, State, WriteTo):
// it never writes to it, never creates or moves a file, and takes a shared lock, so an Open (a
// starting agent) waits for its Close. A file another process has open with Open makes it fail
// within about a second with an error wrapping ErrInUse; an unreadable file with a
// *CorruptError, a newer one with ErrNewerFormat. Like Open, it reads all of the file to check
// it. The methods that write return ErrReadOnly.
func OpenReadOnly(path string) (*Buffer, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("open buffer: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("open buffer: %s is not a regular file", path)
	}
	cause, err := inspect(path, fi.Size())
	if err != nil {
		return nil, err
	}
	if cause != nil {
		return nil, &CorruptError{Path: path, Err: cause}
	}
	db, err := openReadOnly(path, false)
	if err != nil {
		if cause, err := classifyOpenError(path, err); err != nil {
			return nil, err
		} else {
			return nil, &CorruptError{Path: path, Err: cause}
		}
	}
	b := newBuffer(path, Options{QueueLen: 1}.withDefaults(), slog.New(slog.DiscardHandler)) // nothing is queued
	b.readOnly = true
	b.stopping = true
	if _, err := b.load(db); err != nil {
		_ = db.Close()
		return nil, err
	}
	b.db = db
	return b, nil
}

func newBuffer(path string, opts Options, log *slog.Logger) *Buffer {
	mono := opts.mono
	if mono == nil {
		start := time.Now()
		mono = func() time.Duration { return time.Since(start) }
	}
	return &Buffer{
		path:    path,
		opts:    opts,
		log:     log,
		wake:    make(chan struct{}, 1),
		closing: make(chan struct{}),
		ring:    make([]item, opts.QueueLen),
		notify:  make(chan struct{}),
		mono:    mono,
	}
}

// checkOpenClock takes the first clock readings and, if the newest entry is stamped in the
// future, records a jump back: every entry is exempt from MaxAge, in the file at once.
func (b *Buffer) checkOpenClock() error {
	wall := b.opts.Now().Round(0)
	b.lastWall, b.lastMono = wall, b.mono()
	newest := int64(0)
	err := b.db.View(func(tx *bolt.Tx) error {
		if _, v := tx.Bucket(bucketEntries).Cursor().Last(); v != nil {
			newest = int64(binary.BigEndian.Uint64(v))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("open buffer file %s: %w", b.path, err)
	}
	ahead := time.Unix(0, newest).Sub(wall)
	if newest == 0 || ahead <= jumpThreshold {
		return nil
	}
	head := b.head.Load()
	if head > b.ageFloor {
		err := b.db.Update(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeta).Put(keyAgeFloor, be64(head))
		})
		if err != nil {
			return fmt.Errorf("open buffer file %s: write age floor: %w", b.path, err)
		}
		b.ageFloor = head
	}
	b.clockJumps++
	b.pendJump = &ClockJump{Wall: -ahead, AgeFloor: head}
	return nil
}

func inUseError(path string, err error) error {
	return fmt.Errorf("buffer file %s is in use by another process or Open (lock not granted within %v): %w (%w)", path, lockTimeout, ErrInUse, err)
}

// prepare makes sure a usable buffer file exists at b.path: it checks an existing one, moves an
// unreadable one aside, and creates a missing one.
func (b *Buffer) prepare() error {
	fi, err := os.Stat(b.path)
	if errors.Is(err, fs.ErrNotExist) {
		return create(b.path)
	}
	if err != nil {
		return fmt.Errorf("open buffer: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("open buffer: %s is not a regular file", b.path)
	}
	cause, err := inspect(b.path, fi.Size())
	if err != nil || cause == nil {
		return err
	}
	cerr := &CorruptError{Path: b.path, Err: cause}
	moved, err := moveAside(b.path, b.opts.Now().UTC().Format("20060102T150405Z"))
	if err != nil {
		return fmt.Errorf("%w; moving it aside: %v", cerr, err)
	}
	b.log.Error("buffer file unreadable, moved aside; starting a new one", "file", b.path, "moved_to", moved, "err", cause)
	b.movedTo, b.moveCause = moved, cerr
	return create(b.path)
}

// load reads what the buffer keeps in memory from a checked file, and returns its page
// high-water mark (pages). It reads every entry (their sizes) and every state.
func (b *Buffer) load(db *bolt.DB) (hwm int64, err error) {
	err = db.View(func(tx *bolt.Tx) error {
		meta, entries, state := tx.Bucket(bucketMeta), tx.Bucket(bucketEntries), tx.Bucket(bucketState)
		if meta == nil || entries == nil || state == nil {
			return fmt.Errorf("open buffer file %s: buckets missing after check", b.path)
		}
		head, ok1 := u64(meta.Get(keyHead))
		cursor, ok2 := u64(meta.Get(keyCursor))
		if !ok1 || !ok2 {
			return fmt.Errorf("open buffer file %s: head or cursor missing after check", b.path)
		}
		b.head.Store(head)
		b.cursor.Store(cursor)
		b.epoch = string(meta.Get(keyEpoch))
		b.ageFloor, _ = u64(meta.Get(keyAgeFloor))
		c := entries.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if b.bytes == 0 && b.oldest == 0 {
				b.oldest = int64(binary.BigEndian.Uint64(v))
			}
			b.bytes += int64(len(v) - stampLen)
			e := elemSize(len(v))
			b.maxElem = max(b.maxElem, e)
			b.tail.add(e)
		}
		return state.ForEach(func(k, v []byte) error {
			e := stateElemSize(string(k), v)
			b.stateElem = max(b.stateElem, e)
			b.stateBytes += e
			return nil
		})
	})
	if err != nil {
		return 0, err
	}
	err = db.View(func(tx *bolt.Tx) error {
		hwm = tx.Size() / int64(db.Info().PageSize)
		return nil
	})
	return hwm, err
}

// create makes a new buffer file at path: it is initialised under a temporary name and renamed,
// so a file at path always holds the meta data (a crash midway leaves only a stray temporary).
func create(path string) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, base+".new-*") // mode 0600
	if err != nil {
		return fmt.Errorf("create buffer file %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	if err := f.Close(); err != nil {
		return fmt.Errorf("create buffer file %s: %w", path, err)
	}
	db, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: lockTimeout})
	if err != nil {
		return fmt.Errorf("create buffer file %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		var meta *bolt.Bucket
		for _, name := range [][]byte{bucketMeta, bucketEntries, bucketState} {
			bk, err := tx.CreateBucket(name)
			if err != nil {
				return err
			}
			if meta == nil {
				meta = bk
			}
		}
		return errors.Join(
			meta.Put(keyFormat, be64(formatVersion)),
			meta.Put(keyEpoch, []byte(newEpoch())),
			meta.Put(keyHead, be64(0)),
			meta.Put(keyCursor, be64(0)),
		)
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("create buffer file %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("create buffer file: %w", err)
	}
	return syncDir(dir)
}

// moveAside renames path to "<path>.corrupt-<stamp>" (adding "-2", "-3"… if taken) and returns
// the new name.
func moveAside(path, stamp string) (string, error) {
	to := path + ".corrupt-" + stamp
	for i := 2; ; i++ {
		if _, err := os.Lstat(to); errors.Is(err, fs.ErrNotExist) {
			break
		}
		to = fmt.Sprintf("%s.corrupt-%s-%d", path, stamp, i)
	}
	if err := os.Rename(path, to); err != nil {
		return "", err
	}
	return to, syncDir(filepath.Dir(path))
}

// syncDir makes a rename or a new file in dir survive a power loss.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

func newEpoch() string {
	var r [8]byte
	_, _ = rand.Read(r[:]) // never fails: crypto/rand crashes the program instead
	return hex.EncodeToString(r[:])
}

// inspect opens an existing file read-only (so a file this code must refuse stays untouched) and
// decides what it is. It returns a nil cause and error for a usable buffer file; a non-nil cause
// for an unreadable one, to be moved aside; an error for a file to refuse (newer format, in use)
// or one it could not look at (permissions, I/O).
//
// bbolt trusts its pages: a truncated or damaged file may open fine and then panic, or fault on
// pages beyond the end of the mapped file, in whatever goroutine touches it first. So the checks
// go in an order where each step only touches what the one before proved safe, in this goroutine
// with faults turned into panics and recovered: the meta pages (bbolt checksums them), the file
// size against the page high-water mark, the format_version, every page of every bucket,
// then the freelist and bbolt's own Check (which runs in a goroutine of its own, where a panic
// could not be recovered).
func inspect(path string, size int64) (cause, err error) {
	if size == 0 {
		return errors.New("file is empty"), nil
	}
	db, err := openReadOnly(path, false)
	if err != nil {
		return classifyOpenError(path, err)
	}
	cause, err = checkFile(db, path, size)
	if cerr := db.Close(); cerr != nil && cause == nil && err == nil {
		err = fmt.Errorf("close buffer file %s after check: %w", path, cerr)
	}
	if cause != nil || err != nil {
		return cause, err
	}
	db, err = openReadOnly(path, true)
	if err != nil {
		return classifyOpenError(path, err)
	}
	defer db.Close()
	return boltCheck(db), nil
}

// panicError is a recovered bbolt panic (or memory fault) while looking at a file.
type panicError struct{ v any }

func (e panicError) Error() string { return fmt.Sprintf("bbolt panicked: %v", e.v) }

func openReadOnly(path string, preloadFreelist bool) (db *bolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			// bbolt's Open may keep the descriptor (and its shared lock) of the file it
			// panicked on; the file is about to be moved aside, so only the descriptor leaks.
			db, err = nil, panicError{r}
		}
	}()
	return bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: lockTimeout, PreLoadFreelist: preloadFreelist})
}

// classifyOpenError sorts an error from a read-only bolt.Open into a cause (the file's content is
// bad) or an error (the file is in use, or the system refused to open or read it).
func classifyOpenError(path string, err error) (cause, _ error) {
	var pathErr *fs.PathError
	var errno syscall.Errno
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return nil, inUseError(path, err)
	case errors.As(err, &pathErr), errors.As(err, &errno):
		return nil, fmt.Errorf("open buffer file %s: %w", path, err)
	default:
		// berrors.ErrInvalid, ErrVersionMismatch, ErrChecksum, "file size too small", panics.
		return err, nil
	}
}

// checkFile is the first pass of inspect: format, size and every page of every bucket.
func checkFile(db *bolt.DB, path string, size int64) (cause, err error) {
	tx, err := db.Begin(false)
	if err != nil {
		return nil, fmt.Errorf("read buffer file %s: %w", path, err)
	}
	defer func() { _ = tx.Rollback() }()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			cause, err = panicError{r}, nil
		}
	}()

	// First of all, before touching any page but the (checksummed) meta pages: bbolt maps
	// pages by arithmetic, and one beyond the end of a truncated file is whatever memory lies
	// there. (So a truncated file is moved aside even if it had a newer format: it cannot be
	// read to tell.)
	if need := tx.Size(); need > size {
		return fmt.Errorf("file is %d bytes but its pages reach %d: truncated", size, need), nil
	}
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return errors.New("no meta bucket: not a buffer file"), nil
	}
	version, ok := u64(meta.Get(keyFormat))
	if !ok {
		return errors.New("meta format_version missing or not 8 bytes"), nil
	}
	if version > formatVersion {
		return nil, fmt.Errorf("buffer file %s has format_version %d, this binary supports up to %d: %w",
			path, version, formatVersion, ErrNewerFormat)
	}
	if version == 0 {
		return errors.New("meta format_version is 0"), nil
	}
	return walk(tx), nil
}

// walk reads every page of every bucket (bbolt checks each page's id and type as it loads it) and
// checks the buffer's invariants.
func walk(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if epoch := meta.Get(keyEpoch); len(epoch) != 16 {
		return fmt.Errorf("meta epoch %q is not 16 characters", epoch)
	}
	head, ok1 := u64(meta.Get(keyHead))
	cursor, ok2 := u64(meta.Get(keyCursor))
	if !ok1 || !ok2 {
		return errors.New("meta head or cursor missing or not 8 bytes")
	}
	if cursor > head {
		return fmt.Errorf("cursor %d is beyond head %d", cursor, head)
	}
	entries := tx.Bucket(bucketEntries)
	if entries == nil || tx.Bucket(bucketState) == nil {
		return errors.New("entries or state bucket missing")
	}

	// Every other bucket (state, meta, and anything foreign) page by page, so that bbolt's Check
	// later finds no page this goroutine has not survived.
	err := tx.ForEach(func(name []byte, bk *bolt.Bucket) error {
		if string(name) == string(bucketEntries) {
			return nil
		}
		return touch(bk)
	})
	if err != nil {
		return err
	}

	want := cursor + 1
	c := entries.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		seq, ok := u64(k)
		switch {
		case !ok:
			return fmt.Errorf("entry key %x is not 8 bytes", k)
		case seq != want:
			return fmt.Errorf("entry %d found where %d was expected (cursor %d, head %d)", seq, want, cursor, head)
		case len(v) < stampLen: // also a nested bucket, whose value is nil
			return fmt.Errorf("entry %d has a %d-byte value", seq, len(v))
		}
		want++
	}
	if want-1 != head {
		return fmt.Errorf("entries end at %d but head is %d (cursor %d)", want-1, head, cursor)
	}
	return nil
}

func touch(bk *bolt.Bucket) error {
	c := bk.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if v == nil {
			if nested := bk.Bucket(k); nested != nil {
				if err := touch(nested); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// boltCheck runs bbolt's consistency check (freelist, page references, key order) and returns its
// first findings.
func boltCheck(db *bolt.DB) error {
	tx, err := db.Begin(false)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	var errs []error
	for err := range tx.Check() { // drain: Check's goroutine ends when the channel is closed
		if len(errs) < 5 {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func u64(b []byte) (uint64, bool) {
	if len(b) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(b), true
}

func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
