package modbus

import (
	"context"
	"encoding/binary"
	"errors"
	"time"
)

// Quantity limits of the read functions (spec v1.1b3, 6.1-6.4): a response PDU must fit in 253
// bytes.
const (
	MaxReadBits      = 2000
	MaxReadRegisters = 125
)

// maxPDU is the largest PDU (spec v1.1b3, 4.1: 256-byte RTU ADU minus address and CRC).
const maxPDU = 253

// served describes one answered request, for the OnRequest observer.
type served struct {
	unit, fc  byte
	addr, qty uint16 // 0 unless the PDU had a read request's length
	exception Exception
	values    []uint16 // scratch: valid until the next request on the connection
	// silent: the unit does not answer (SetUnitSilent); nothing is sent or observed.
	silent bool
}

// scratch is the per-connection memory of the PDU core, so that serving allocates nothing.
type scratch struct {
	values [MaxReadBits]uint16
}

// respond appends the response PDU to the request PDU pdu for unit to dst and describes what it
// answered. It waits out an injected delay first, and returns ctx's error if ctx ends during it:
// the connection is gone and nothing must be sent.
func (s *Server) respond(ctx context.Context, unit byte, pdu []byte, dst []byte, sc *scratch) ([]byte, served, error) {
	sv := served{unit: unit}
	if len(pdu) > 0 {
		sv.fc = pdu[0]
	}
	if s.silent[unit].Load() {
		sv.silent = true
		return dst, sv, nil
	}
	if d := s.delay(unit); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return dst, sv, ctx.Err()
		}
	}
	if len(pdu) == 5 {
		sv.addr = binary.BigEndian.Uint16(pdu[1:])
		sv.qty = binary.BigEndian.Uint16(pdu[3:])
	}
	sv.exception = s.check(unit, pdu, sv.addr, sv.qty)
	if sv.exception == 0 {
		vals := sc.values[:sv.qty]
		err := s.src.Read(unit, Table(sv.fc), sv.addr, vals)
		if err != nil {
			sv.exception = exceptionOf(err)
		} else {
			sv.values = vals
		}
	}
	if sv.exception != 0 {
		return append(dst, sv.fc|0x80, byte(sv.exception)), sv, nil
	}
	return appendValues(dst, sv.fc, sv.values), sv, nil
}

// exceptionOf returns the exception to answer for a Source's error.
func exceptionOf(err error) Exception {
	// The plain assertion first: errors.As makes its target escape, an allocation per answer on a
	// path tests drive at full polling speed.
	if e, ok := err.(Exception); ok && e != 0 {
		return e
	}
	var e Exception
	if errors.As(err, &e) && e != 0 {
		return e
	}
	return ServerDeviceFailure
}

// check validates a request in the order of the spec's state diagrams (v1.1b3, 6.1-6.4): function
// code, then quantity and PDU length (exception 3), then address range (left to the Source,
// exception 2). A gateway answers for a missing unit before looking at the function, and an
// injected unit fault overrides everything; an injected address range comes just before the
// address check, as a PLC program that rejects some addresses would.
func (s *Server) check(unit byte, pdu []byte, addr, qty uint16) Exception {
	if e := s.injected(unit); e != 0 {
		return e
	}
	if len(pdu) == 0 {
		return IllegalFunction // no framer passes an empty PDU; guard the index below
	}
	if !s.src.HasUnit(unit) {
		return GatewayTargetFailed
	}
	var limit uint16
	switch Table(pdu[0]) {
	case Coils, DiscreteInputs:
		limit = MaxReadBits
	case HoldingRegisters, InputRegisters:
		limit = MaxReadRegisters
	default:
		return IllegalFunction
	}
	// A read PDU is exactly function, address and quantity; any other length means the client
	// and server disagree about the frame: "the implied length is incorrect" (exception 3).
	if len(pdu) != 5 || qty < 1 || qty > limit {
		return IllegalDataValue
	}
	if int(addr)+int(qty) > 0x10000 {
		return IllegalDataAddress
	}
	return s.addressException(unit, Table(pdu[0]), addr, qty)
}

// appendValues appends a read response PDU: function code, byte count, then registers big-endian
// or bits packed eight to a byte, lowest address in the least significant bit (spec 6.1).
func appendValues(dst []byte, fc byte, vals []uint16) []byte {
	switch Table(fc) {
	case Coils, DiscreteInputs:
		n := (len(vals) + 7) / 8
		dst = append(dst, fc, byte(n))
		for i := 0; i < len(vals); i += 8 {
			var b byte
			for j := i; j < min(i+8, len(vals)); j++ {
				if vals[j] != 0 {
					b |= 1 << (j - i)
				}
			}
			dst = append(dst, b)
		}
	default:
		dst = append(dst, fc, byte(2*len(vals)))
		for _, v := range vals {
			dst = binary.BigEndian.AppendUint16(dst, v)
		}
	}
	return dst
}
