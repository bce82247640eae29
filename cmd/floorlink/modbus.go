package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	gomodbus "github.com/goburrow/modbus"
	"github.com/spf13/cobra"

	"github.com/floorlink/floorlink/drivers"
	"github.com/floorlink/floorlink/drivers/modbus"
)

func newModbusCommand(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "modbus",
		Short: "Modbus tools: scan a device's registers",
	}
	cmd.AddCommand(newModbusScanCommand(stdout))
	return cmd
}

// scanOptions are the flags of modbus scan.
type scanOptions struct {
	unit    uint8
	start   uint16
	count   int
	table   string
	yaml    bool
	timeout time.Duration
}

func newModbusScanCommand(stdout io.Writer) *cobra.Command {
	var o scanOptions
	cmd := &cobra.Command{
		Use:   "scan URL [--unit N] [--start N] [--count N] [--table hr|ir|co|di] [--yaml]",
		Short: "Read a range of registers and show each under every plausible interpretation",
		Long: "scan reads --count registers (or coils, discrete inputs) of --table from --start (zero-based\n" +
			"protocol addresses: hr:0 is 40001) on one unit, and prints each register as hex, uint16, int16\n" +
			"and ASCII, and each pair of registers as int32, uint32 and float32 in every byte order\n" +
			"(ABCD, CDAB, BADC, DCBA), so that values can be matched against a PLC manual. --yaml prints a\n" +
			"tag-list skeleton to paste into a device's tags instead.\n\n" +
			"URL is tcp://HOST:PORT (port 502 if omitted) or rtu:///dev/ttyUSB0?baud=9600&parity=none\n" +
			"(also data_bits and stop_bits; defaults 9600 8N1). Reads are split at 125 registers (2000\n" +
			"bits); a read answered with an exception is read one register at a time, and registers\n" +
			"the device refuses are shown with their exception.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			protocol, address, line, err := parseScanURL(args[0])
			if err != nil {
				return usageError{err}
			}
			switch o.table {
			case "hr", "ir", "co", "di":
			default:
				return usageError{fmt.Errorf("--table %q: want hr, ir, co or di", o.table)}
			}
			if o.count < 1 || int(o.start)+o.count > 65536 {
				return usageError{fmt.Errorf("--count %d from --start %d: want 1 or more, ending at 65535 at most", o.count, o.start)}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			conn, err := modbus.Dial(ctx, protocol, address, line, o.timeout)
			if err != nil {
				return err
			}
			defer conn.Close()
			res, err := scan(conn, o)
			if err != nil {
				return err
			}
			heading := fmt.Sprintf("floorlink modbus scan %s --unit %d --table %s --start %d --count %d", args[0], o.unit, o.table, o.start, o.count)
			if o.yaml {
				return writeScanYAML(stdout, heading, res)
			}
			return writeScan(stdout, heading, res)
		},
	}
	f := cmd.Flags()
	f.Uint8Var(&o.unit, "unit", 1, "unit id of the device")
	f.Uint16Var(&o.start, "start", 0, "first address, zero-based (hr:0 is 40001)")
	f.IntVar(&o.count, "count", 100, "registers (or bits) to read")
	f.StringVar(&o.table, "table", "hr", "hr (holding registers), ir (input registers), co (coils) or di (discrete inputs)")
	f.BoolVar(&o.yaml, "yaml", false, "print a tag-list skeleton instead of the table")
	f.DurationVar(&o.timeout, "timeout", 2*time.Second, "bound on one request")
	return cmd
}

// parseScanURL reads tcp://HOST[:PORT] or rtu:///dev/X?baud=...&parity=...&data_bits=...&stop_bits=....
func parseScanURL(s string) (protocol, address string, line drivers.Serial, err error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", "", line, fmt.Errorf("%q: %w", s, err)
	}
	switch u.Scheme {
	case "tcp":
		if u.Host == "" || u.Path != "" && u.Path != "/" {
			return "", "", line, fmt.Errorf("%q: want tcp://HOST:PORT", s)
		}
		address = u.Host
		if u.Port() == "" {
			address += ":502"
		}
		return modbus.ProtocolTCP, address, line, nil
	case "rtu":
		if u.Host != "" || u.Path == "" {
			return "", "", line, fmt.Errorf("%q: want rtu:///dev/ttyUSB0?baud=9600 (three slashes: the path is absolute)", s)
		}
		q := u.Query()
		num := func(key string, dst *int) {
			if v := q.Get(key); v != "" && err == nil {
				n, perr := strconv.Atoi(v)
				if perr != nil {
					err = fmt.Errorf("%q: %s=%q is not a number", s, key, v)
				}
				*dst = n
			}
			q.Del(key)
		}
		num("baud", &line.Baud)
		num("data_bits", &line.DataBits)
		num("stop_bits", &line.StopBits)
		line.Parity = q.Get("parity")
		q.Del("parity")
		for k := range q {
			if err == nil {
				err = fmt.Errorf("%q: unknown parameter %q: want baud, parity, data_bits, stop_bits", s, k)
			}
		}
		return modbus.ProtocolRTU, u.Path, line, err
	}
	return "", "", line, fmt.Errorf("%q: want tcp://HOST:PORT or rtu:///dev/ttyX?baud=...", s)
}

// scanned is one register (or bit) of a scan: its value, or the reason it could not be read.
type scanned struct {
	addr int
	reg  uint16 // for registers
	bit  bool   // for coils and discrete inputs
	err  string // "exception 2" etc.; empty when read
}

type scanResult struct {
	table modbus.Table
	regs  []scanned
}

func (r *scanResult) isBits() bool {
	return r.table == modbus.Coils || r.table == modbus.DiscreteInputs
}

// scan reads the range in the largest requests the protocol allows; a request answered with an
// exception is read again one address at a time, so that the holes of the map show.
func scan(conn *modbus.Conn, o scanOptions) (*scanResult, error) {
	res := &scanResult{table: modbus.Table(o.table)}
	step := 125
	if res.isBits() {
		step = 2000
	}
	for first := int(o.start); first < int(o.start)+o.count; first += step {
		n := min(step, int(o.start)+o.count-first)
		out, err := scanRange(conn, o.unit, res, first, n)
		if err != nil {
			var exc *gomodbus.ModbusError
			if !errors.As(err, &exc) {
				return nil, err
			}
			out = nil
			for a := first; a < first+n; a++ {
				one, err := scanRange(conn, o.unit, res, a, 1)
				if errors.As(err, &exc) {
					one = []scanned{{addr: a, err: fmt.Sprintf("exception %d", exc.ExceptionCode)}}
				} else if err != nil {
					return nil, err
				}
				out = append(out, one...)
			}
		}
		res.regs = append(res.regs, out...)
	}
	return res, nil
}

func scanRange(conn *modbus.Conn, unit uint8, res *scanResult, first, n int) ([]scanned, error) {
	data, err := conn.Read(unit, res.table, uint16(first), uint16(n))
	if err != nil {
		return nil, err
	}
	out := make([]scanned, n)
	for i := range out {
		out[i].addr = first + i
		if res.isBits() {
			out[i].bit = data[i/8]>>(i%8)&1 == 1
		} else {
			out[i].reg = uint16(data[2*i])<<8 | uint16(data[2*i+1])
		}
	}
	return out, nil
}

// reference is the Modicon reference of a zero-based address: 40001 for hr:0, 6 digits past
// 9999.
func reference(t modbus.Table, addr int) string {
	lead := map[modbus.Table]string{modbus.Coils: "0", modbus.DiscreteInputs: "1", modbus.InputRegisters: "3", modbus.HoldingRegisters: "4"}[t]
	if addr+1 <= 9999 {
		return fmt.Sprintf("%s%04d", lead, addr+1)
	}
	return fmt.Sprintf("%s%05d", lead, addr+1)
}

func ascii(b byte) byte {
	if b >= 0x20 && b < 0x7F {
		return b
	}
	return '.'
}

var scanOrders = []string{"ABCD", "CDAB", "BADC", "DCBA"}

// writeScan prints the registers one a line, then every pair of neighbouring readable
// registers as 32-bit values in each byte order, decoded by the driver's own decoder.
func writeScan(w io.Writer, heading string, r *scanResult) error {
	fmt.Fprintf(w, "# %s\n\n", heading)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if r.isBits() {
		fmt.Fprintln(tw, "address\treference\tvalue")
		for _, s := range r.regs {
			v := "0"
			switch {
			case s.err != "":
				v = s.err
			case s.bit:
				v = "1"
			}
			fmt.Fprintf(tw, "%s:%d\t%s\t%s\n", r.table, s.addr, reference(r.table, s.addr), v)
		}
		return tw.Flush()
	}
	fmt.Fprintln(tw, "address\treference\thex\tuint16\tint16\tascii")
	for _, s := range r.regs {
		if s.err != "" {
			fmt.Fprintf(tw, "%s:%d\t%s\t%s\n", r.table, s.addr, reference(r.table, s.addr), s.err)
			continue
		}
		fmt.Fprintf(tw, "%s:%d\t%s\t0x%04X\t%d\t%d\t%c%c\n", r.table, s.addr, reference(r.table, s.addr), s.reg, s.reg, int16(s.reg),
			ascii(byte(s.reg>>8)), ascii(byte(s.reg)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n# pairs: the register and the next as one 32-bit value (byte_order as in a tag)\n\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "address\torder\thex\tint32\tuint32\tfloat32")
	for i := 0; i+1 < len(r.regs); i++ {
		a, b := r.regs[i], r.regs[i+1]
		if a.err != "" || b.err != "" || b.addr != a.addr+1 {
			continue
		}
		wire := []byte{byte(a.reg >> 8), byte(a.reg), byte(b.reg >> 8), byte(b.reg)}
		for k, order := range scanOrders {
			i32, _ := modbus.Decode(drivers.TypeInt32, order, wire)
			u32, _ := modbus.Decode(drivers.TypeUint32, order, wire)
			f32, _ := modbus.Decode(drivers.TypeFloat32, order, wire)
			addr := ""
			if k == 0 {
				addr = fmt.Sprintf("%s:%d", r.table, a.addr)
			}
			fmt.Fprintf(tw, "%s\t%s\t0x%08X\t%d\t%d\t%s\n", addr, order, u32.Uint(), i32.Int(), u32.Uint(), formatFloat32(f32.Float()))
		}
	}
	return tw.Flush()
}

// formatFloat32 prints a float32 with the digits that tell it apart, and names the special
// values as a PLC manual would.
func formatFloat32(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(f, 'g', -1, 32)
}

// writeScanYAML prints one tag per readable register (bool for coils and discrete inputs,
// uint16 for registers) with its value as a comment, ready to rename and retype.
func writeScanYAML(w io.Writer, heading string, r *scanResult) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n", heading)
	b.WriteString("# A skeleton for a device's tags: one tag per readable address with the value read as a\n" +
		"# comment. Rename the tags, delete those you do not need, and where the scan's table shows a\n" +
		"# 32-bit value or text across registers, keep the first register's tag with its type\n" +
		"# (int32, uint32, float32, string with length...) and byte_order.\n")
	b.WriteString("tags:\n")
	for i, s := range r.regs {
		if i+1 < len(r.regs) && !r.isBits() {
			writeFloatHints(&b, r, s, r.regs[i+1])
		}
		if s.err != "" {
			fmt.Fprintf(&b, "  # %s:%d (%s): %s, not readable\n", r.table, s.addr, reference(r.table, s.addr), s.err)
			continue
		}
		fmt.Fprintf(&b, "  - name: %s_%d\n    address: \"%s:%d\" # %s\n", r.table, s.addr, r.table, s.addr, reference(r.table, s.addr))
		if r.isBits() {
			fmt.Fprintf(&b, "    type: bool # %v\n", s.bit)
			continue
		}
		fmt.Fprintf(&b, "    type: uint16 # %d (0x%04X, int16 %d)\n", s.reg, s.reg, int16(s.reg))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeFloatHints notes, before a register's tag, the byte orders in which it and the next
// register read as a float32 of a magnitude process values have (1e-3 to 1e7): a hint, since
// integers and text rarely look like that.
func writeFloatHints(b *strings.Builder, r *scanResult, a, next scanned) {
	if a.err != "" || next.err != "" || next.addr != a.addr+1 {
		return
	}
	wire := []byte{byte(a.reg >> 8), byte(a.reg), byte(next.reg >> 8), byte(next.reg)}
	for _, order := range scanOrders {
		v, _ := modbus.Decode(drivers.TypeFloat32, order, wire)
		if f := math.Abs(v.Float()); f >= 1e-3 && f < 1e7 {
			fmt.Fprintf(b, "  # %s:%d-%d read %s as float32 with byte_order %s\n", r.table, a.addr, next.addr,
				formatFloat32(v.Float()), order)
		}
	}
}
