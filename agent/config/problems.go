package config

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Problem is one thing wrong with a configuration file, at a line and column (1-based,
// counted in characters; zero when the problem has no place in the file) and a field path
// such as "devices[0].tags[3].address" ("" for the file as a whole).
type Problem struct {
	File      string
	Line, Col int
	Path, Msg string
}

// String formats p as "file:line:col: path: message", leaving out what p does not have.
func (p Problem) String() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		b.WriteString(":")
	}
	if p.Line > 0 {
		b.WriteString(strconv.Itoa(p.Line))
		b.WriteString(":")
		b.WriteString(strconv.Itoa(p.Col))
		b.WriteString(":")
	}
	if b.Len() > 0 {
		b.WriteString(" ")
	}
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Error lists the problems of one configuration file, sorted by position.
type Error struct {
	Problems []Problem
}

// Error returns one problem per line.
func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Join returns nil when there is no problem, and otherwise an *Error holding ps sorted by
// position (problems without a position last; then by path and message, so that the order does
// not depend on which part found what first) with exact duplicates removed. A problem without
// a file name gets f's. f may be nil.
func Join(f *File, ps ...Problem) error {
	if len(ps) == 0 {
		return nil
	}
	out := slices.Clone(ps)
	for i := range out {
		if out[i].File == "" && f != nil {
			out[i].File = f.Path
		}
	}
	slices.SortFunc(out, func(a, b Problem) int {
		if (a.Line == 0) != (b.Line == 0) {
			if a.Line == 0 {
				return 1
			}
			return -1
		}
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col),
			strings.Compare(a.Path, b.Path), strings.Compare(a.Msg, b.Msg))
	})
	out = slices.Compact(out)
	return &Error{Problems: out}
}

// Problemf returns a problem with the field at path, placed where the file holds that field or,
// when it does not (the key is missing), its nearest ancestor.
func (f *File) Problemf(path, format string, args ...any) Problem {
	line, col, _ := f.Pos(path)
	return Problem{File: f.Path, Line: line, Col: col, Path: path, Msg: fmt.Sprintf(format, args...)}
}

// Pos returns the line and column of the field at path, e.g. "devices[0].tags[3].address": of
// its value when that is a scalar, of its key when the value is a mapping or a list, of the item
// for a list item. A path the file does not hold falls back to its nearest ancestor that it does
// (the file itself, "", is the last resort); ok is false only when nothing was found.
func (f *File) Pos(path string) (line, col int, ok bool) {
	if f.pos == nil {
		return 0, 0, false
	}
	for {
		if p, found := f.pos.m[path]; found {
			return p.line, p.col, true
		}
		if path == "" {
			return 0, 0, false
		}
		path = parentPath(path)
	}
}

// position is a place in the file.
type position struct{ line, col int }

// positions maps field paths to where the file holds them.
type positions struct{ m map[string]position }

// parentPath drops the last element of a field path: "a.b[2]" → "a.b" → "a" → "".
func parentPath(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}

// genericPath replaces list indices by "[]": "devices[2].tags[0].scale" →
// "devices[].tags[].scale", the form the field table uses.
func genericPath(path string) string {
	if !strings.Contains(path, "[") {
		return path
	}
	var b strings.Builder
	for i := 0; i < len(path); i++ {
		b.WriteByte(path[i])
		if path[i] == '[' {
			for i+1 < len(path) && path[i+1] != ']' {
				i++
			}
		}
	}
	return b.String()
}
