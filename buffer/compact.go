package buffer

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// compactTxBytes bounds the bytes one transaction of a compaction copies, so that copying a
// large backlog does not hold all of it in memory.
const compactTxBytes = 64 << 20

// compactAllocSize is the growth step of a compacted file: it ends at most this much (plus a
// page) beyond its pages.
const compactAllocSize = 64 << 10

// Compact copies the buffer file src, which no process may have open, into a new file dst
// (mode 0600; it must not exist), leaving out the pages src no longer uses: bbolt never shrinks
// a file, so after a long outage this is how it gets small again. Everything is kept: entries,
// epoch, head, cursor, age floor and states; dst opens as the same buffer. dst is synced before
// Compact returns; renaming it over src is the caller's (CompactFile does both safely).
//
// src is checked first, like Open does: an unreadable one gives a *CorruptError, a newer one
// ErrNewerFormat, one in use ErrInUse (within about a second). On an error dst is removed.
func Compact(src, dst string) error {
	fi, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("compact buffer: %w", err)
	}
	if _, err := os.Lstat(dst); !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("compact buffer file %s: destination %s exists (or cannot be checked: %v)", src, dst, err)
	}
	if err := checkForCompact(src, fi.Size()); err != nil {
		return err
	}
	db, err := openReadOnly(src, false)
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return inUseError(src, err)
		}
		return fmt.Errorf("compact buffer file %s: %w", src, err)
	}
	defer db.Close()
	if err := compactInto(db, dst); err != nil {
		_ = os.Remove(dst)
		return fmt.Errorf("compact buffer file %s into %s: %w", src, dst, err)
	}
	return syncDir(filepath.Dir(dst))
}

// CompactFile compacts the buffer file at path in place, for a stopped agent (`floorlink buffer
// compact`): it holds the file's lock throughout, copies it into a temporary file next to it,
// syncs that, checks it holds the same buffer, renames it over path and syncs the directory. A
// crash at any point leaves either the old file or the new one at path (and maybe a stray
// "<path>.compact-*"). An Open that waited for the lock meanwhile opens the new file. It
// returns the file's size before and after.
//
// A file in use gives an error wrapping ErrInUse (within about a second); checks as for Compact.
func CompactFile(path string) (before, after int64, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, 0, fmt.Errorf("compact buffer: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return 0, 0, fmt.Errorf("compact buffer: %s is not a regular file", path)
	}
	if err := checkForCompact(path, fi.Size()); err != nil {
		return 0, 0, err
	}
	// Writable, for its exclusive lock: nothing is written through it.
	src, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout, FreelistType: bolt.FreelistMapType})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return 0, 0, inUseError(path, err)
		}
		return 0, 0, fmt.Errorf("compact buffer file %s: %w", path, err)
	}
	defer src.Close()
	if fi, err = os.Stat(path); err != nil {
		return 0, 0, fmt.Errorf("compact buffer: %w", err)
	}
	before = fi.Size()

	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, base+".compact-*") // mode 0600
	if err != nil {
		return 0, 0, fmt.Errorf("compact buffer file %s: %w", path, err)
	}
	tmp := f.Name()
	if err := f.Close(); err != nil {
		_ = os.Remove(tmp)
		return 0, 0, fmt.Errorf("compact buffer file %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	if err := compactInto(src, tmp); err != nil {
		return 0, 0, fmt.Errorf("compact buffer file %s into %s: %w", path, tmp, err)
	}
	if err := sameMeta(src, tmp); err != nil {
		return 0, 0, fmt.Errorf("compact buffer file %s into %s: %w", path, tmp, err)
	}
	if fi, err = os.Stat(tmp); err != nil {
		return 0, 0, fmt.Errorf("compact buffer: %w", err)
	}
	after = fi.Size()
	if err := os.Rename(tmp, path); err != nil {
		return 0, 0, fmt.Errorf("compact buffer: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return 0, 0, err
	}
	return before, after, nil
}

// checkForCompact checks a buffer file as Open does, turning what Open would move aside into a
// *CorruptError.
func checkForCompact(path string, size int64) error {
	cause, err := inspect(path, size)
	if err != nil {
		return err
	}
	if cause != nil {
		return &CorruptError{Path: path, Err: cause}
	}
	return nil
}

// compactInto copies src into a new bbolt file at dst (created, or empty) and syncs it.
func compactInto(src *bolt.DB, dst string) error {
	db, err := bolt.Open(dst, 0o600, &bolt.Options{Timeout: lockTimeout, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return err
	}
	// A small growth step, so the copy ends close to the size of what it holds: with bbolt's
	// default (16 MiB, and powers of two below it) it could end larger than MaxBytes.
	db.AllocSize = compactAllocSize
	if err := bolt.Compact(db, src, compactTxBytes); err != nil {
		_ = db.Close()
		return err
	}
	if err := db.Close(); err != nil {
		return err
	}
	// bbolt synced every commit; this also covers a file system that wants the file synced
	// once it is closed.
	f, err := os.OpenFile(dst, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// sameMeta checks that the compacted file at path holds src's meta bucket and as many entries
// and states.
func sameMeta(src *bolt.DB, path string) error {
	dst, err := openReadOnly(path, false)
	if err != nil {
		return err
	}
	defer dst.Close()
	return src.View(func(stx *bolt.Tx) error {
		return dst.View(func(dtx *bolt.Tx) error {
			for _, name := range [][]byte{bucketMeta, bucketEntries, bucketState} {
				s, d := stx.Bucket(name), dtx.Bucket(name)
				if s == nil || d == nil {
					return fmt.Errorf("bucket %s missing", name)
				}
				if sn, dn := s.Stats().KeyN, d.Stats().KeyN; sn != dn {
					return fmt.Errorf("bucket %s holds %d keys, the copy %d", name, sn, dn)
				}
			}
			sm, dm := stx.Bucket(bucketMeta), dtx.Bucket(bucketMeta)
			return sm.ForEach(func(k, v []byte) error {
				if !bytes.Equal(dm.Get(k), v) {
					return fmt.Errorf("meta %s is %x, the copy has %x", k, v, dm.Get(k))
				}
				return nil
			})
		})
	})
}
