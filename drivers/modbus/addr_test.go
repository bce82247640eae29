package modbus

import (
	"strings"
	"testing"
)

func TestParseAddress(t *testing.T) {
	f := func(in string, want address) {
		t.Helper()
		got, err := parseAddress(in, 0)
		if err != nil {
			t.Errorf("parseAddress(%q): %v", in, err)
			return
		}
		if got != want {
			t.Errorf("parseAddress(%q) = %v, want %v", in, got, want)
		}
	}
	hr := func(reg uint16) address { return address{space: spaceHolding, reg: reg, bit: noBit} }

	// Modicon, 5 digits: 1-based within 1..9999.
	f("00001", address{space: spaceCoil, reg: 0, bit: noBit})
	f("09999", address{space: spaceCoil, reg: 9998, bit: noBit})
	f("10001", address{space: spaceDiscrete, reg: 0, bit: noBit})
	f("30001", address{space: spaceInput, reg: 0, bit: noBit})
	f("30010", address{space: spaceInput, reg: 9, bit: noBit})
	f("40001", hr(0))
	f("49999", hr(9998))
	// Modicon, 6 digits: 1..65536.
	f("400001", hr(0))
	f("465536", hr(65535))
	f("000001", address{space: spaceCoil, reg: 0, bit: noBit})
	f("365536", address{space: spaceInput, reg: 65535, bit: noBit})
	// Explicit zero-based forms.
	f("hr:0", hr(0))
	f("hr:65535", hr(65535))
	f("hr:007", hr(7))
	f("ir:12", address{space: spaceInput, reg: 12, bit: noBit})
	f("co:5", address{space: spaceCoil, reg: 5, bit: noBit})
	f("di:65535", address{space: spaceDiscrete, reg: 65535, bit: noBit})
	// Register bits.
	f("40001.3", address{space: spaceHolding, reg: 0, bit: 3})
	f("40001.15", address{space: spaceHolding, reg: 0, bit: 15})
	f("hr:0.0", address{space: spaceHolding, reg: 0, bit: 0})
	f("ir:9.07", address{space: spaceInput, reg: 9, bit: 7})
	f("300001.1", address{space: spaceInput, reg: 0, bit: 1})
}

func TestParseAddress_Errors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"40001.16", `"40001.16": bit must be 0..15`},
		{"hr:0.99", `"hr:0.99": bit must be 0..15`},
		{"hr:0.", `"hr:0.": bit "" is not a number`},
		{"hr:0.x", `bit "x" is not a number`},
		{"40001.123", `bit "123" is not a number`},
		{"00001.3", `"00001.3": a bit suffix is only for input or holding registers`},
		{"di:4.0", "a discrete input is already one bit"},
		{"40000", `"40000": reference 0 out of range: 5-digit references are 1-based, 40001..49999 (40001 is holding register 0)`},
		{"400000", `6-digit references are 1-based, 400001..465536 (400001 is holding register 0)`},
		{"465537", "reference 65537 out of range"},
		{"30000", "30001..39999 (30001 is input register 0)"},
		{"20001", "leading digit 2 is not a Modicon table: want 0 (coil), 1 (discrete input), 3 (input register) or 4 (holding register)"},
		{"50001", "leading digit 5"},
		{"hr:65536", `"hr:65536": address 65536 out of range: hr:N takes N 0..65535`},
		{"hr:100000", "want a Modicon reference"},
		{"hr:-1", "want a Modicon reference"},
		{"hr:+1", "want a Modicon reference"},
		{"hr:", "want a Modicon reference"},
		{"HR:0", `unknown space "HR": want co, di, ir or hr`},
		{"xx:0", `unknown space "xx"`},
		{"4001", "want a Modicon reference"},
		{"4000001", "want a Modicon reference"},
		{"", `"": want a Modicon reference`},
		{" 40001", "want a Modicon reference"},
		{"4000a", "want a Modicon reference"},
		{"40001.3.1", `bit "3.1" is not a number`},
	} {
		t.Run(tc.in, func(t *testing.T) {
			a, err := parseAddress(tc.in, 0)
			if err == nil {
				t.Fatalf("parseAddress(%q) = %v, want an error", tc.in, a)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("parseAddress(%q) error:\n got %s\nwant it to contain %s", tc.in, err, tc.want)
			}
		})
	}
}

func TestParseAddress_BaseOne(t *testing.T) {
	f := func(in string, want address) {
		t.Helper()
		got, err := parseAddress(in, 1)
		if err != nil {
			t.Errorf("parseAddress(%q, 1): %v", in, err)
			return
		}
		if got != want {
			t.Errorf("parseAddress(%q, 1) = %v, want %v", in, got, want)
		}
	}
	f("hr:1", address{space: spaceHolding, reg: 0, bit: noBit})
	f("hr:65536", address{space: spaceHolding, reg: 65535, bit: noBit})
	f("co:1", address{space: spaceCoil, reg: 0, bit: noBit})
	f("ir:10.3", address{space: spaceInput, reg: 9, bit: 3})
	f("40001", address{space: spaceHolding, reg: 0, bit: noBit}) // Modicon references do not move
	for in, want := range map[string]string{
		"hr:0":     `"hr:0": address 0 out of range: with address_base 1, hr:N takes N 1..65536 (hr:1 is the first holding register; address_base says`,
		"di:65537": `"di:65537": address 65537 out of range: with address_base 1, di:N takes N 1..65536`,
	} {
		_, err := parseAddress(in, 1)
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("parseAddress(%q, 1) = %v, want an error starting %s", in, err, want)
		}
	}
}

func TestAddress_String(t *testing.T) {
	for in, want := range map[string]string{
		"40001":    "hr:0",
		"400001":   "hr:0",
		"465536":   "hr:65535",
		"30002":    "ir:1",
		"00001":    "co:0",
		"10010":    "di:9",
		"40001.3":  "hr:0.3",
		"hr:007":   "hr:7",
		"ir:9.07":  "ir:9.7",
		"hr:1.15":  "hr:1.15",
		"co:65535": "co:65535",
	} {
		a, err := parseAddress(in, 0)
		if err != nil {
			t.Fatalf("parseAddress(%q): %v", in, err)
		}
		if got := a.String(); got != want {
			t.Errorf("parseAddress(%q).String() = %q, want %q", in, got, want)
		}
	}
}

// FuzzParseAddress checks that every accepted address formats to a canonical form that parses
// back to the same address, and that the canonical form is a fixed point.
func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{
		"40001", "400001", "465536", "00001", "10001", "30001", "49999", "40000", "20001",
		"hr:0", "ir:65535", "co:1", "di:2", "hr:0.15", "40001.3", "40001.16", "hr:", ".", ":", "hr:0.",
		"4000001", "hr:65536", "HR:1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 64 {
			return
		}
		if a1, err := parseAddress(s, 1); err == nil {
			// With address_base 1 the explicit forms count from 1; the canonical form is
			// zero-based, and Modicon references do not move.
			b, err := parseAddress(a1.String(), 0)
			if err != nil || b != a1 {
				t.Fatalf("parseAddress(%q, 1) = %+v, canonical %q parses to %+v, %v", s, a1, a1.String(), b, err)
			}
			if a0, err := parseAddress(s, 0); err == nil && !strings.Contains(s, ":") && a0 != a1 {
				t.Fatalf("Modicon reference %q: base 0 gives %+v, base 1 gives %+v", s, a0, a1)
			}
		}
		a, err := parseAddress(s, 0)
		if err != nil {
			if !strings.Contains(err.Error(), ":") {
				t.Errorf("parseAddress(%q) error %q does not quote the address", s, err)
			}
			return
		}
		if a.bit != noBit && (a.bit < 0 || a.bit > 15 || !a.space.isRegister()) {
			t.Fatalf("parseAddress(%q) = %+v: bit on a non-register or out of range", s, a)
		}
		canon := a.String()
		b, err := parseAddress(canon, 0)
		if err != nil {
			t.Fatalf("parseAddress(%q) = %v, but its canonical form %q does not parse: %v", s, a, canon, err)
		}
		if a != b {
			t.Fatalf("parseAddress(%q) = %+v, canonical %q parses to %+v", s, a, canon, b)
		}
		if b.String() != canon {
			t.Fatalf("canonical form %q formats again as %q", canon, b.String())
		}
	})
}
