package modbus_test

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/floorlink/floorlink/simulators/line"
	simmodbus "github.com/floorlink/floorlink/simulators/modbus"
)

// The faults the driver's tests rely on, seen from clients on TCP (RTU in rtu_test.go).

func TestServer_AddressExceptions(t *testing.T) {
	f := start(t, line.Config{}, simmodbus.Options{})
	// Three addresses inside the 100-register block 0-99 of unit 1, and an input register of
	// unit 2 with another code.
	f.srv.SetAddressExceptions(
		simmodbus.AddressException{Unit: 1, Table: simmodbus.HoldingRegisters, First: 40, Last: 42, Code: simmodbus.IllegalDataAddress},
		simmodbus.AddressException{Unit: 2, Table: simmodbus.InputRegisters, First: 5, Last: 5, Code: simmodbus.ServerDeviceFailure},
	)
	c1, _ := f.client(t, 1)
	c2, _ := f.client(t, 2)
	tests := []struct {
		name string
		read func() ([]byte, error)
		fc   byte
		want simmodbus.Exception // 0: data
	}{
		{"whole block", func() ([]byte, error) { return c1.ReadHoldingRegisters(0, 100) }, 3, 2},
		{"just below", func() ([]byte, error) { return c1.ReadHoldingRegisters(0, 40) }, 3, 0},
		{"just above", func() ([]byte, error) { return c1.ReadHoldingRegisters(43, 57) }, 3, 0},
		{"first of the three", func() ([]byte, error) { return c1.ReadHoldingRegisters(40, 1) }, 3, 2},
		{"last of the three", func() ([]byte, error) { return c1.ReadHoldingRegisters(42, 1) }, 3, 2},
		{"overlapping from below", func() ([]byte, error) { return c1.ReadHoldingRegisters(30, 11) }, 3, 2},
		{"overlapping from above", func() ([]byte, error) { return c1.ReadHoldingRegisters(42, 20) }, 3, 2},
		{"other unit", func() ([]byte, error) { return c2.ReadHoldingRegisters(0, 100) }, 3, 0},
		{"other table", func() ([]byte, error) { return c1.ReadInputRegisters(0, 10) }, 4, 0},
		{"input of unit 2", func() ([]byte, error) { return c2.ReadInputRegisters(0, 10) }, 4, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.read()
			if tt.want == 0 {
				if err != nil {
					t.Errorf("got %v, want data", err)
				}
				return
			}
			if got := exceptionCode(t, err, tt.fc); got != byte(tt.want) {
				t.Errorf("got exception %d, want %d", got, tt.want)
			}
		})
	}
	// A bad quantity is answered as such, before the injected range (goburrow refuses to send it).
	raw := dial(t, f.addr)
	send(t, raw, frame(1, 1, 3, 40, 0))
	if r := readFrame(t, raw); string(r.pdu) != "\x83\x03" {
		t.Errorf("quantity 0 at 40: pdu % x, want 83 03", r.pdu)
	}
	if got := len(f.srv.AddressExceptions()); got != 2 {
		t.Errorf("AddressExceptions lists %d, want 2", got)
	}
	f.srv.SetAddressExceptions()
	if _, err := c1.ReadHoldingRegisters(0, 100); err != nil {
		t.Errorf("after clearing: %v", err)
	}
}

func TestServer_SilentUnit(t *testing.T) {
	f := start(t, line.Config{}, simmodbus.Options{})
	f.srv.SetUnitSilent(2, true)
	c := dial(t, f.addr)
	// Pipelined: unit 2 swallows its request, unit 1 answers on the same connection.
	send(t, c, append(frame(1, 2, 3, 0, 1), frame(2, 1, 3, 0, 1)...))
	if r := readFrame(t, c); r.txid != 2 || r.unit != 1 {
		t.Errorf("got txid %d unit %d, want 2 and 1", r.txid, r.unit)
	}
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read %d bytes, %v; want silence from unit 2", n, err)
	}
	f.srv.SetUnitSilent(2, false)
	send(t, c, frame(3, 2, 3, 0, 1))
	if r := readFrame(t, c); r.txid != 3 {
		t.Errorf("got txid %d, want 3 once unit 2 speaks again", r.txid)
	}
}

// TestServer_Late: a late answer arrives after the client's timeout on the same connection,
// with its own transaction id, behind the answer to a request sent after it.
func TestServer_Late(t *testing.T) {
	const late, timeout = 500 * time.Millisecond, 200 * time.Millisecond
	var mu sync.Mutex
	var observed []simmodbus.Request // guarded by mu: late answers are observed from their own goroutine
	f := start(t, line.Config{}, simmodbus.Options{OnRequest: func(r simmodbus.Request) {
		mu.Lock()
		observed = append(observed, r)
		mu.Unlock()
	}})
	f.srv.SetUnitLate(1, late)
	c := dial(t, f.addr)
	sent := time.Now()
	send(t, c, frame(10, 1, 3, 15, 1))
	c.SetReadDeadline(time.Now().Add(timeout))
	if n, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read %d bytes, %v; want nothing before the timeout", n, err)
	}
	send(t, c, frame(11, 2, 3, 15, 1))
	if r := readFrame(t, c); r.txid != 11 || r.unit != 2 || u16(r.pdu[2:], 0) != 2500 {
		t.Errorf("first answer txid %d unit %d pdu % x, want txid 11 from unit 2", r.txid, r.unit, r.pdu)
	}
	r := readFrame(t, c)
	arrived := time.Since(sent)
	if r.txid != 10 || r.unit != 1 || u16(r.pdu[2:], 0) != 2000 {
		t.Errorf("second answer txid %d unit %d pdu % x, want the late txid 10 from unit 1", r.txid, r.unit, r.pdu)
	}
	if arrived < late {
		t.Errorf("late answer after %v, want at least %v", arrived, late)
	}
	waitFor(t, 5*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(observed) != 2 || observed[1].Unit != 1 || observed[1].At.Sub(sent) < late {
			return fmt.Errorf("observed %+v, want unit 2 then the late unit 1", observed)
		}
		return nil
	})
}

func TestServer_Late_DroppedConnection(t *testing.T) {
	f := start(t, line.Config{}, simmodbus.Options{})
	f.srv.SetUnitLate(1, time.Hour)
	c := dial(t, f.addr)
	send(t, c, frame(1, 1, 3, 0, 1))
	send(t, c, frame(2, 2, 3, 0, 1))
	readFrame(t, c)
	f.srv.DropConnections()
	expectClosed(t, c)
	waitFor(t, 5*time.Second, func() error {
		if n := f.srv.Connections(); n != 0 {
			return fmt.Errorf("%d connections, want 0: the late answer must not hold it", n)
		}
		return nil
	})
}

func TestServer_Fragments_TCP(t *testing.T) {
	f := start(t, line.Config{}, simmodbus.Options{})
	f.srv.SetFragments(simmodbus.Fragments{Gap: 20 * time.Millisecond, Size: 4})
	c := dial(t, f.addr)
	measureFragments(t, 4, func() []chunk {
		send(t, c, frame(1, 1, 3, 0, 2)) // 13-byte answer: 4+4+4+1
		var got []chunk
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		for n := 0; n < 13; {
			b := make([]byte, 64)
			k, err := c.Read(b)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, chunk{time.Now(), b[:k]})
			n += k
		}
		return got
	})
	// goburrow reads through them.
	cl, _ := f.client(t, 3)
	if b, err := cl.ReadHoldingRegisters(15, 1); err != nil || u16(b, 0) != 1800 {
		t.Errorf("goburrow through pieces: % x, %v; want 1800", b, err)
	}
	f.srv.SetFragments(simmodbus.Fragments{})
	send(t, c, frame(2, 1, 3, 0, 2))
	if r := readFrame(t, c); r.txid != 2 {
		t.Errorf("txid %d, want 2", r.txid)
	}
}
