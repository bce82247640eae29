package modbus

import (
	"fmt"
	"strconv"
	"strings"
)

// space is one of the four Modbus data tables. The order is the order in which a poll cycle
// reads them.
type space uint8

const (
	spaceCoil space = iota
	spaceDiscrete
	spaceInput
	spaceHolding
)

// prefix is the explicit form's prefix, also the canonical form of the space.
func (s space) prefix() string {
	switch s {
	case spaceCoil:
		return "co"
	case spaceDiscrete:
		return "di"
	case spaceInput:
		return "ir"
	}
	return "hr"
}

// noun names the space in messages and errors: "read holding registers 0-19".
func (s space) noun() string {
	switch s {
	case spaceCoil:
		return "coils"
	case spaceDiscrete:
		return "discrete inputs"
	case spaceInput:
		return "input registers"
	}
	return "holding registers"
}

func (s space) singular() string { return strings.TrimSuffix(s.noun(), "s") }

func (s space) isRegister() bool { return s == spaceInput || s == spaceHolding }

// noBit marks an address without a bit suffix.
const noBit = -1

// address is a parsed tag address: a zero-based protocol address in one space, and for a bool
// read from a register, the bit (0 = least significant).
type address struct {
	space space
	reg   uint16
	bit   int8 // noBit, or 0..15
}

// String formats a in the canonical explicit form, e.g. "hr:0" or "hr:0.3", zero-based:
// parseAddress(a.String(), 0) reads it back to the same address.
func (a address) String() string {
	s := a.space.prefix() + ":" + strconv.Itoa(int(a.reg))
	if a.bit != noBit {
		s += "." + strconv.Itoa(int(a.bit))
	}
	return s
}

// baseHint explains address_base in errors about the explicit forms.
const baseHint = "address_base says what co:N, di:N, ir:N and hr:N count from; Modicon references such as 40001 are always 1-based"

const addrForms = `want a Modicon reference (00001 coil, 10001 discrete input, 30001 input register, ` +
	`40001 holding register; 6 digits up to 465536) or a zero-based co:N, di:N, ir:N, hr:N (N 0..65535), ` +
	`optionally with .bit for a register (40001.3, hr:0.3)`

// parseAddress parses a tag address. Accepted forms:
//
//	00001..09999, 000001..065536  coil, 1-based (00001 is coil 0)
//	10001..19999, 100001..165536  discrete input
//	30001..39999, 300001..365536  input register
//	40001..49999, 400001..465536  holding register (40001 is holding register 0)
//	co:N di:N ir:N hr:N           protocol address counted from base: N 0..65535 when base is 0,
//	                              1..65536 when it is 1 (hr:1 is then holding register 0)
//	<register address>.B          bit B (0..15, 0 least significant) of an input or holding register
//
// Errors quote s and say what is accepted; they do not name the tag (the caller's FieldError
// does).
func parseAddress(s string, base int) (address, error) {
	a := address{bit: noBit}
	body := s
	if i := strings.IndexByte(s, '.'); i >= 0 {
		body = s[:i]
		b, ok := parseDigits(s[i+1:], 2)
		if !ok {
			return address{}, fmt.Errorf("%q: bit %q is not a number: bit must be 0..15", s, s[i+1:])
		}
		if b > 15 {
			return address{}, fmt.Errorf("%q: bit must be 0..15", s)
		}
		a.bit = int8(b)
	}

	if i := strings.IndexByte(body, ':'); i >= 0 {
		switch body[:i] {
		case "co":
			a.space = spaceCoil
		case "di":
			a.space = spaceDiscrete
		case "ir":
			a.space = spaceInput
		case "hr":
			a.space = spaceHolding
		default:
			return address{}, fmt.Errorf("%q: unknown space %q: want co, di, ir or hr", s, body[:i])
		}
		n, ok := parseDigits(body[i+1:], 5)
		if !ok {
			return address{}, fmt.Errorf("%q: %s", s, addrForms)
		}
		if base == 1 {
			if n < 1 || n > 65536 {
				return address{}, fmt.Errorf("%q: address %d out of range: with address_base 1, %s:N takes N 1..65536 "+
					"(%s:1 is the first %s; %s)", s, n, body[:i], body[:i], a.space.singular(), baseHint)
			}
			n--
		} else if n > 65535 {
			return address{}, fmt.Errorf("%q: address %d out of range: %s:N takes N 0..65535", s, n, body[:i])
		}
		a.reg = uint16(n)
	} else {
		if len(body) != 5 && len(body) != 6 {
			return address{}, fmt.Errorf("%q: %s", s, addrForms)
		}
		_, allDigits := parseDigits(body, 6)
		ref, ok := parseDigits(body[1:], 5)
		if !ok || !allDigits {
			return address{}, fmt.Errorf("%q: %s", s, addrForms)
		}
		switch body[0] {
		case '0':
			a.space = spaceCoil
		case '1':
			a.space = spaceDiscrete
		case '3':
			a.space = spaceInput
		case '4':
			a.space = spaceHolding
		default:
			return address{}, fmt.Errorf("%q: leading digit %c is not a Modicon table: want 0 (coil), "+
				"1 (discrete input), 3 (input register) or 4 (holding register)", s, body[0])
		}
		limit := 9999
		if len(body) == 6 {
			limit = 65536
		}
		if ref < 1 || ref > limit {
			first := body[:1] + strings.Repeat("0", len(body)-2) + "1"
			last := body[:1] + strconv.Itoa(limit)
			return address{}, fmt.Errorf("%q: reference %d out of range: %d-digit references are 1-based, "+
				"%s..%s (%s is %s 0)", s, ref, len(body), first, last, first, a.space.singular())
		}
		a.reg = uint16(ref - 1)
	}

	if a.bit != noBit && !a.space.isRegister() {
		return address{}, fmt.Errorf("%q: a bit suffix is only for input or holding registers "+
			"(3xxxx, 4xxxx, ir:N, hr:N); a %s is already one bit", s, a.space.singular())
	}
	return a, nil
}

// parseDigits parses 1..maxLen ASCII decimal digits; no sign, no spaces.
func parseDigits(s string, maxLen int) (int, bool) {
	if len(s) == 0 || len(s) > maxLen {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}
