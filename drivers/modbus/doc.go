// Package modbus is Floorlink's Modbus driver: it polls the devices on one connection (a Modbus
// TCP device, several unit ids behind a TCP gateway, or the units on one RS-485 port) and turns
// their coils, discrete inputs and registers into drivers.Batch values.
//
// New validates the devices of one connection (addresses, types, byte orders, options; every
// problem at once, as *drivers.FieldError naming the device, with paths like "tags[3].address"
// or "max_registers") and plans each device's reads. Run polls from the caller's goroutine until
// its context ends: one request at a time on the connection, devices in turn, each poll group on
// its own interval; it reconnects with capped exponential backoff and jitter, and reports each
// device's connectivity changes and faults as drivers.Event values, once per transition.
//
// # Addresses
//
// A tag's address is either a 1-based Modicon reference, 5 digits (00001..09999 coils,
// 10001..19999 discrete inputs, 30001..39999 input registers, 40001..49999 holding registers) or
// 6 digits (400001..465536 and so on), or an explicit "co:N", "di:N", "ir:N", "hr:N", counted
// from the device's address_base (0 by default: hr:0 is 40001; 1: hr:1 is). A bool may be one
// bit of an input or holding register: "40001.3" or "hr:0.3" (bit 0 is the least significant).
//
// # Types and byte orders
//
// bool (coil, discrete input or register bit); int16, uint16, bcd16 (one register); int32,
// uint32, float32, bcd32 (two); int64, uint64, float64 (four); string (Tag.Length registers of
// ASCII, two characters each, cut at the first NUL, trailing spaces trimmed). Byte orders are
// the letters of the big-endian value on the wire: "ABCD" (the default), "CDAB" (the words in
// reverse order: for 64-bit values all four), "BADC" (the bytes of each word swapped), "DCBA"
// (little-endian); "AB" (the default) and "BA" for 16-bit types and strings. Samples carry raw
// values (int, uint, float, bool or string): scale, offset and enum names are the agent
// pipeline's job. A BCD digit above 9 makes a Bad sample ("invalid bcd digit").
//
// # Planning
//
// Each poll group's tags of one unit and one table are planned into the fewest reads under the
// device's max_registers (and Options.MaxBits), never spanning a hole of more than max_gap
// registers that no tag covers, never splitting a value, and among plans with as few reads, the
// one reading the fewest registers: a dynamic program over the tags sorted by address (plan,
// planSpace), checked against an exhaustive search on random maps.
//
// # Exceptions
//
// A read answered with exception 2 (illegal data address) or 3 (illegal data value) is
// isolated: split in halves, each read at once, halves that fail split again down to single
// tags, neighbouring good pieces joined again. Every tag that can be read is read in that same
// poll; only the tags that fail alone are Bad, with "exception 2". The split is remembered and
// the whole read tried again after Options.ReprobeInterval, so a fixed register map heals.
// Other exceptions mark the read's tags Bad with their code; 10 and 11 (gateway path or target
// failed) also skip the rest of that device's poll.
//
// # Buses
//
// Devices sharing a connection are polled in turn, never two requests at once. A device that
// does not answer within its timeout, after its retries, has the rest of its poll marked Bad
// without being asked, so a silent unit costs the others one timeout per poll, not their poll.
// Connectivity events are per device; a failure of the connection itself (refused, reset, port
// gone) marks every device down and backs off.
//
// # What it must not know
//
// Config files, MQTT, the buffer and the pipeline: it sees drivers.Device values and a
// drivers.Sink. It never writes to a device (function codes 1-4 only).
//
// # Caveats
//
// goburrow/modbus v0.1.0 serves only as the packager (MBAP or RTU framing, CRC) and request
// encoder; the I/O is ours (transport.go, rtu.go), because its own transports:
//   - have no context: Close waits for a blocked request, so shutdown would wait up to Timeout.
//     Ours set a past deadline (TCP) or poll the port in 1 ms slices (RTU) and Run returns at
//     once when its context ends.
//   - keep a TCP connection after a timeout without draining it, so a late reply is taken for
//     the next request and every later one fails on a transaction id mismatch. Ours drop every
//     frame whose transaction id is not the current request's, and number requests per
//     connection (goburrow's per-unit packagers would otherwise reuse ids across units).
//   - never reconnect after the peer reset the connection. Ours redial.
//   - on RTU, sleep a fixed time before reading (about 200 ms for a 125-register read at 115200
//     baud, a ceiling of 5 requests/s), never flush input, and take a late answer for the next
//     request's: silent wrong data. Ours flush before each request, frame the reply by its
//     length under a per-request deadline, check the CRC, resynchronise after a timeout, and
//     wait out requests that timed out before sending one whose answer could be mistaken for
//     theirs.
//
// RTU has no transaction id: a late answer is recognised as such only while it could still be
// explained by a request that timed out (for that request's timeout and wire time again, at
// least one second more); an answer later than that, of the same shape as a later request's,
// is indistinguishable from it on the wire. goburrow's client checks a reply's byte count against the frame but not
// against the quantity requested; the decoder checks it, and a mismatch marks the read's tags
// Bad ("malformed reply") and, on TCP, closes the connection. goburrow also rejects a reply whose
// unit id differs from the request's: some gateways do that, and such a device shows as a
// permanent malformed-reply fault. goburrow's client allocates its request and response structs
// on every request, so a poll costs a few allocations per read, never per sample.
package modbus
