// Package modbus is plcsim's Modbus server: it serves read requests from a Source over Modbus TCP
// and Modbus RTU and injects faults for tests. Importers alias it (simmodbus), since
// drivers/modbus and the client libraries share the name.
//
// It is written from the Modbus Application Protocol Specification v1.1b3, Modbus Messaging on
// TCP/IP Implementation Guide v1.0b and Modbus over Serial Line v1.02, and on purpose shares no
// code with Floorlink's driver: a bug in a shared encoder would hide on both sides of every test.
//
// One PDU core (function codes 1-4 served, every other code answered with exception 1, the
// checks in the order of the specification's state diagrams) sits behind two framers: MBAP over
// TCP (Run: a goroutine per connection) and RTU on a serial line (RunRTU: a pty from OpenPTY or a
// device from OpenSerial; frames cut by function code length and CRC, silence to resynchronise,
// one worker per unit as devices on a bus, answers paced at the line's wire speed). The fault
// layer (delays, late answers, silent units, unit and address-range exceptions, fragmented
// writes) sits between decoding and encoding, so both framers share it; dropping and refusing
// connections are TCP's.
//
// LineSource serves a line.Line through the register map documented in simulators/README.md,
// including the layout block (Layouts): every data type and byte order with known values.
//
// Caveats: the server is read-only (writes are answered with exception 1, Illegal Function). A
// malformed MBAP header (protocol id not 0, length below 2 or above 254) closes the connection,
// since the stream can no longer be framed. Unit ids 0 and 255 have no special meaning on TCP: a
// unit the Source does not have is answered with exception 0x0B, as a gateway would; on RTU such
// frames and broadcasts get no answer. RTU needs Linux (termios, ptys); on a pty, parity and stop
// bits only shape the pacing, since the kernel's pty driver ignores parity.
package modbus
