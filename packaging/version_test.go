package main

import (
	"os/exec"
	"testing"
)

func TestDebianVersion(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		got, err := DebianVersion(in)
		if err != nil {
			t.Fatalf("DebianVersion(%q): %v", in, err)
		}
		if got != want {
			t.Fatalf("DebianVersion(%q) = %q, want %q", in, got, want)
		}
	}
	f("v1.2.3", "1.2.3")
	f("1.2.3", "1.2.3")
	f("v1.2.3-dirty", "1.2.3+dirty")
	f("v1.2.3-4-gabc1234", "1.2.3+4.gabc1234")
	f("v1.2.3-4-gabc1234-dirty", "1.2.3+4.gabc1234.dirty")
	f("v1.2.3-rc.1", "1.2.3~rc.1")
	f("v1.2.3-rc-1", "1.2.3~rc.1")
	f("v1.2.3-rc.1-4-gabc1234", "1.2.3~rc.1+4.gabc1234")
	f("2e22c18", "0.0.0+g2e22c18")
	f("2e22c18-dirty", "0.0.0+g2e22c18.dirty")
	f("dev", "0.0.0+dev")
	f("nightly-4-gabc1234", "0.0.0+nightly.4.gabc1234")
}

func TestDebianVersion_Invalid(t *testing.T) {
	for _, in := range []string{"", "release/1.0", "1.0 beta", "v1.2_3"} {
		if got, err := DebianVersion(in); err == nil {
			t.Errorf("DebianVersion(%q) = %q, want an error", in, got)
		}
	}
}

// TestDebianVersion_Order checks with dpkg itself that versions sort as their builds were made.
func TestDebianVersion_Order(t *testing.T) {
	ordered := []string{"abc1234", "v0.9.0", "v1.0.0-rc.1", "v1.0.0-rc.1-3-gabc1234", "v1.0.0",
		"v1.0.0-2-gabc1234", "v1.0.0-10-gabc1234", "v1.0.1"}
	for i := 1; i < len(ordered); i++ {
		a, err := DebianVersion(ordered[i-1])
		if err != nil {
			t.Fatal(err)
		}
		b, err := DebianVersion(ordered[i])
		if err != nil {
			t.Fatal(err)
		}
		if !dpkgLess(t, a, b) {
			t.Errorf("dpkg sorts %s (%s) not before %s (%s)", a, ordered[i-1], b, ordered[i])
		}
	}
}

// dpkgLess asks dpkg whether version a sorts before b.
func dpkgLess(t *testing.T, a, b string) bool {
	t.Helper()
	if _, err := exec.LookPath("dpkg"); err != nil {
		t.Fatal("dpkg not found: run make deps (Debian's dpkg compares the versions)")
	}
	err := exec.Command("dpkg", "--compare-versions", a, "lt", b).Run()
	if _, ok := err.(*exec.ExitError); ok {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}
