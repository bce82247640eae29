package modbus

import (
	"encoding/hex"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/floorlink/floorlink/drivers"
)

// TestDocs_Modbus keeps docs/modbus.md in step with the driver: every type and byte order, every
// reason a bad sample can carry, and the byte-order table's worked example, which is decoded
// here by the driver itself.
func TestDocs_Modbus(t *testing.T) {
	raw, err := os.ReadFile("../../docs/modbus.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	for _, typ := range Types() {
		if !strings.Contains(doc, "`"+string(typ)+"`") {
			t.Errorf("docs/modbus.md does not name the type `%s`", typ)
		}
	}
	for _, o := range []string{"ABCD", "CDAB", "BADC", "DCBA", "AB", "BA"} {
		if !strings.Contains(doc, "`"+o+"`") {
			t.Errorf("docs/modbus.md does not name the byte order `%s`", o)
		}
	}
	for _, r := range []string{reasonTimeout, reasonUnreachable, reasonMalformed, reasonNotRead, reasonBadBCD, "exception N"} {
		if !strings.Contains(doc, "| `"+r+"` |") {
			t.Errorf("docs/modbus.md's table of reasons has no row for `%s`", r)
		}
	}

	// | `CDAB` | C D | A B | ... | `E979` `42F6` | -1.883367e+25 |
	row := regexp.MustCompile("(?m)^\\| `(ABCD|CDAB|BADC|DCBA)` \\|.*\\| `([0-9A-F]{4})` `([0-9A-F]{4})` \\| ([^ |]+) \\|$")
	rows := row.FindAllStringSubmatch(doc, -1)
	if len(rows) != 4 {
		t.Fatalf("docs/modbus.md: %d rows in the byte-order table, want 4", len(rows))
	}
	example, _ := Decode(drivers.TypeFloat32, "", []byte{0x42, 0xF6, 0xE9, 0x79})
	for _, m := range rows {
		wire, err := hex.DecodeString(m[2] + m[3])
		if err != nil {
			t.Fatal(err)
		}
		// The row's registers hold 123.456 in its order...
		if v, err := Decode(drivers.TypeFloat32, m[1], wire); err != nil || v != example {
			t.Errorf("%s row: %s %s in %s decodes to %v (%v), want 123.456", m[1], m[2], m[3], m[1], v, err)
		}
		// ...and read as ABCD they are the value the last column says.
		v, _ := Decode(drivers.TypeFloat32, "ABCD", wire)
		if got := strconv.FormatFloat(v.Float(), 'g', 7, 32); got != m[4] {
			t.Errorf("%s row: %s %s read as ABCD is %s, the table says %s", m[1], m[2], m[3], got, m[4])
		}
	}
}
