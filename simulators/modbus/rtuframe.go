package modbus

// RTU framing (Modbus over Serial Line v1.02, 2.5.1): an ADU is the unit id, the PDU and a CRC-16,
// at most 256 bytes, and frames are separated by at least 3.5 character times of silence.
const (
	rtuMinFrame = 4   // unit id, function code, CRC
	rtuMaxFrame = 256 // spec 2.5.1.1
)

// crc16 returns the Modbus CRC-16 of b (spec 6.2.2: polynomial 0xA001 reflected, initial value
// 0xFFFF). The frame carries it low byte first.
func crc16(b []byte) uint16 {
	crc := uint16(0xFFFF)
	for _, c := range b {
		crc ^= uint16(c)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0xA001
			} else {
				crc >>= 1
			}
		}
	}
	return crc
}

// appendCRC appends the CRC of b to b, low byte first.
func appendCRC(b []byte) []byte {
	c := crc16(b)
	return append(b, byte(c), byte(c>>8))
}

// crcValid reports whether frame ends with the CRC of the bytes before it.
func crcValid(frame []byte) bool {
	n := len(frame)
	return n >= rtuMinFrame && crc16(frame[:n-2]) == uint16(frame[n-2])|uint16(frame[n-1])<<8
}

// rtuRequestLen returns the length of the request ADU that starts b, from its function code
// (Modbus Application Protocol v1.1b3, section 6): > 0 when known; 0 when b is too short to tell;
// -1 for a function whose request length the PDU does not give, which only silence can end.
func rtuRequestLen(b []byte) int {
	if len(b) < 2 {
		return 0
	}
	// need returns the length when the byte count at index i is in b.
	need := func(i, fixed int) int {
		if len(b) <= i {
			return 0
		}
		return fixed + int(b[i])
	}
	switch b[1] {
	case 1, 2, 3, 4, 5, 6, 8: // reads, single writes, diagnostics: 4 data bytes
		return 8
	case 7, 11, 12, 17: // exception status, event counter, event log, report server id
		return 4
	case 15, 16: // write multiple coils, registers: address, quantity, byte count at 6
		return need(6, 9)
	case 20, 21: // file records: byte count at 2
		return need(2, 5)
	case 22: // mask write register
		return 10
	case 23: // read/write multiple registers: byte count at 10
		return need(10, 13)
	case 24: // read FIFO queue
		return 6
	case 43: // encapsulated interface: read device identification is 7 bytes, others vary
		if len(b) < 3 {
			return 0
		}
		if b[2] == 0x0E {
			return 7
		}
	}
	return -1
}

// rtuFramer cuts a byte stream into request frames. It is pure: the caller feeds bytes as they
// arrive (push) and reports each silence of at least the inter-frame time (gap).
//
// A frame is found by its function code's length and must carry a valid CRC, so frames that
// follow each other without a pause are still cut right. Anything that does not frame (a bad CRC,
// garbage, a frame cut short) is skipped one byte at a time, looking for a valid frame inside it;
// bytes that could still be the start of a frame wait for more bytes or the next silence, which
// ends every frame in progress (spec 2.5.1.1). A function whose request length is unknown is a
// frame when the bytes up to the silence carry a valid CRC. Decisions depend only on the bytes
// between two silences, never on how reads split them.
//
// The inter-character limit of 1.5 character times (spec 2.5.1.1) is not enforced: a pty delivers
// a frame in pieces whenever the scheduler likes, and the length and CRC already decide.
type rtuFramer struct {
	buf []byte // undecided bytes of the current burst; buf[0] is at stream offset off
	off int64
}

// pending reports whether bytes wait for more input or a silence.
func (f *rtuFramer) pending() bool { return len(f.buf) > 0 }

// push adds bytes that arrived without a silence before them, calling emit for each frame found
// with its offset in the stream. frame is valid only during the call.
func (f *rtuFramer) push(p []byte, emit func(frame []byte, off int64)) {
	f.buf = append(f.buf, p...)
	f.scan(false, emit)
}

// gap reports a silence: frames in progress end, and what does not frame is dropped.
func (f *rtuFramer) gap(emit func(frame []byte, off int64)) {
	f.scan(true, emit)
}

func (f *rtuFramer) scan(atGap bool, emit func([]byte, int64)) {
	i := 0 // start of the undecided bytes
	defer func() {
		f.off += int64(i)
		f.buf = f.buf[:copy(f.buf, f.buf[i:])]
	}()
	for i < len(f.buf) {
		b := f.buf[i:]
		n := rtuRequestLen(b)
		switch {
		case n > rtuMaxFrame:
			i++ // a byte count no frame can hold: not a frame start
		case n > 0 && len(b) >= n:
			if crcValid(b[:n]) {
				emit(b[:n], f.off+int64(i))
				i += n
			} else {
				i++
			}
		case n < 0 && atGap && len(b) <= rtuMaxFrame && crcValid(b):
			emit(b, f.off+int64(i))
			i += len(b)
		case atGap, n < 0 && len(b) > rtuMaxFrame:
			i++ // cut short by the silence, or longer than any frame
		default:
			return // wait for the rest of a frame, or for the silence that ends it
		}
	}
}
