package buffer

import (
	"errors"
	"fmt"
)

// Errors callers branch on, compared with errors.Is. Other errors (I/O, a bad argument) carry the
// operation and the file in their text and are not meant to be matched.
var (
	// ErrNewerFormat is wrapped by Open when the file's format_version is newer than this code
	// knows. The file is left untouched: an older binary must never move aside or rewrite data a
	// newer one wrote. The wrapping error names the file and both versions.
	ErrNewerFormat = errors.New("buffer file format is newer than this binary supports")

	// ErrQueueFull is returned by Append when Options.QueueLen payloads are already waiting for a
	// commit, and by AppendDroppable from Options.DroppableQueueLen on. Nothing was queued; the
	// caller decides whether to drop, count or retry.
	ErrQueueFull = errors.New("buffer append queue is full")

	// ErrInUse is wrapped by Open, OpenReadOnly, Compact and CompactFile when another process
	// (or another Open in this one) has the file open: its lock was not granted within about a
	// second. For a CLI, this means the agent is running.
	ErrInUse = errors.New("buffer file is in use")

	// ErrReadOnly is returned by the methods that write (Run, Append, AppendDroppable, Ack,
	// SetState) on a Buffer from OpenReadOnly.
	ErrReadOnly = errors.New("buffer is open read-only")

	// ErrTooLarge is wrapped by Append and AppendDroppable for a payload over the limit: bbolt's
	// value size, or with Options.MaxBytes, MaxBytes/128.
	ErrTooLarge = errors.New("payload too large for the buffer")

	// ErrClosed is returned by Append once Run has returned or Close was called, by Run when Close
	// was called while it ran, by Flush and Wait when no commit can come any more, and by every
	// method that needs the file after Close.
	ErrClosed = errors.New("buffer is closed")
)

// CorruptError describes a buffer file that could not be used: bbolt could not open it, its pages
// are damaged (e.g. the file was truncated), or it lacks the buffer's meta data (not a buffer
// file). Open moves such a file aside and starts a fresh one; MovedAside returns this error as
// the cause.
type CorruptError struct {
	// Path is the file as it was named when the damage was found.
	Path string
	// Err is what was wrong, as bbolt or the buffer's own checks reported it.
	Err error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("buffer file %s is unreadable: %v", e.Path, e.Err)
}

// Unwrap returns the cause.
func (e *CorruptError) Unwrap() error { return e.Err }
