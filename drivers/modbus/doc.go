// Package modbus is Floorlink's Modbus TCP driver: it polls one device (one unit id behind one
// TCP endpoint) and turns its coils, discrete inputs and registers into drivers.Batch values.
//
// New validates a drivers.Device (addresses, types, byte orders; every problem at once, as
// *drivers.FieldError with paths like "tags[3].address") and plans the fewest reads that cover
// every tag. Run polls from the caller's goroutine until its context ends, reconnects with
// capped exponential backoff and jitter, and reports connection changes and faults as
// drivers.Event values, once per transition.
//
// # Addresses
//
// A tag's address is either a 1-based Modicon reference, 5 digits (00001..09999 coils,
// 10001..19999 discrete inputs, 30001..39999 input registers, 40001..49999 holding registers) or
// 6 digits (400001..465536 and so on), or a zero-based protocol address "co:N", "di:N", "ir:N",
// "hr:N" with N 0..65535. 40001, 400001 and hr:0 are the same register. A bool may be one bit of
// an input or holding register: "40001.3" or "hr:0.3" (bit 0 is the least significant).
// Types: bool (coil, discrete input or register bit), int16 and uint16 (one register), int32,
// uint32 and float32 (two registers). Byte orders, as the letters of the big-endian value on the
// wire: "ABCD" (default), "CDAB" (word-swapped), "BADC" (byte-swapped), "DCBA" (little-endian)
// for 32-bit types; "AB" (default) and "BA" for 16-bit types.
//
// Samples carry raw values: int for int16/int32, uint for uint16/uint32, float for float32,
// bool for bool. Scale and offset are the agent pipeline's job, not the driver's.
//
// # What it must not know
//
// Config files, MQTT, the buffer and the pipeline: it sees a drivers.Device and a drivers.Sink.
// It never writes to a device (function codes 1-4 only).
//
// # Caveats
//
// goburrow/modbus v0.1.0 serves only as the MBAP packager and the request encoder; the TCP I/O is
// ours (transport.go), because its own transport:
//   - has no context: Close waits for a blocked request, so shutdown would wait up to Timeout.
//     Ours sets a past deadline when the Run context ends, and Run returns at once.
//   - keeps a connection open after a timeout, so a late reply is taken for the next request
//     and every later one fails with a transaction id mismatch. Ours closes the connection on any
//     transport error and drops frames whose transaction id is not the current request's.
//   - never reconnects after the peer reset the connection. Ours redials on the next request.
//
// goburrow's client checks a reply's byte count against the frame but not against the quantity
// requested; the decoder checks it, and a short or long reply closes the connection (the stream
// may be out of step) and marks that read's tags Bad ("malformed reply"). goburrow also rejects
// a reply whose unit id differs from the request's: some gateways do that, and such a device
// shows as a permanent malformed-reply fault.
//
// A Modbus exception marks only its read's tags Bad ("exception 2" and so on) and leaves the
// connection up. Requests in the gap between two tags (Options.MaxGap) can make a device answer
// "illegal data address" for the whole read: set a negative MaxGap for such devices.
//
// goburrow's client allocates its request and response structs on every request, so a poll
// cycle costs a few allocations per read, never per sample.
package modbus
