// Package modbus is plcsim's Modbus server: it serves read requests from a Source over Modbus TCP
// and injects faults for tests. Importers alias it (simmodbus), since drivers/modbus and the
// client libraries share the name.
//
// It is written from the Modbus Application Protocol Specification v1.1b3 and Modbus Messaging on
// TCP/IP Implementation Guide v1.0b, and on purpose shares no code with Floorlink's driver: a
// bug in a shared encoder would hide on both sides of every test.
//
// One PDU core (function codes 1-4 served, every other code answered with exception 1, the
// checks in the order of the specification's state diagrams) sits behind a framer: MBAP over TCP
// today, with a goroutine per connection; an RTU framer can reuse the core. The fault layer
// (delay, injected exception) sits between decoding and encoding, so every framer shares it.
//
// LineSource serves a line.Line through the register map documented in simulators/README.md.
//
// Caveats: the server is read-only (writes are answered with exception 1, Illegal Function). A
// malformed MBAP header (protocol id not 0, length below 2 or above 254) closes the connection,
// since the stream can no longer be framed. Unit ids 0 and 255 have no special meaning: a unit
// the Source does not have is answered with exception 0x0B, as a gateway would.
package modbus
