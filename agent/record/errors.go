package record

import (
	"errors"
	"strconv"
)

// Errors of the codec. Callers branch on them with errors.Is; the errors returned wrap them with
// the field and byte offset at fault.
var (
	// ErrInvalid is wrapped by AppendBinary when a Record cannot be encoded: an unknown Kind,
	// ValueKind or Quality, a name that is empty, longer than 255 bytes or repeated, more than
	// 65535 fields, or a time out of the int64 nanosecond range. It is a bug in the producer.
	ErrInvalid = errors.New("invalid record")
	// ErrCorrupt is wrapped by Decode when its input is not a valid encoding of the version its
	// first byte names: truncated, a varint that overflows or is not minimal, a length beyond the
	// input, unknown flag bits, a value AppendBinary would have refused, or trailing bytes.
	ErrCorrupt = errors.New("corrupt record")
	// ErrUnknownVersion is wrapped by Decode when the first byte names no format version this
	// binary knows: the data was written by a newer Floorlink, or is not a record at all.
	ErrUnknownVersion = errors.New("unknown record format version")
)

// A DecodeError says why and where Decode rejected its input. Err is ErrCorrupt or
// ErrUnknownVersion, so errors.Is works on a *DecodeError; use errors.As for the offset.
type DecodeError struct {
	Offset int    // byte offset in the input of the item at fault
	What   string // what was wrong, e.g. "field 3 name: length 40 beyond input (12 bytes left)"
	Err    error  // ErrCorrupt or ErrUnknownVersion
}

func (e *DecodeError) Error() string {
	return "decode record at byte " + strconv.Itoa(e.Offset) + ": " + e.What + ": " + e.Err.Error()
}

func (e *DecodeError) Unwrap() error { return e.Err }
