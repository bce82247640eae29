//go:build !linux

package modbus

import (
	"errors"
	"os"
)

// errNoSerial: plcsim's gateways run Linux; elsewhere only Modbus TCP is served.
var errNoSerial = errors.New("modbus rtu: serial ports and ptys are supported on linux only")

// PTY is a pseudo-terminal for RunRTU; see the Linux build.
type PTY struct{}

// OpenPTY fails outside Linux.
func OpenPTY(RTUOptions) (*PTY, error) { return nil, errNoSerial }

// Path returns "".
func (*PTY) Path() string { return "" }

// Port returns nil.
func (*PTY) Port() Port { return nil }

// Close does nothing.
func (*PTY) Close() error { return nil }

// OpenSerial fails outside Linux.
func OpenSerial(string, RTUOptions) (*os.File, error) { return nil, errNoSerial }
