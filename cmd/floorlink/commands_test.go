package main

import (
	"slices"
	"testing"
)

// TestRoot_Commands: every command of DESIGN.md's CLI is reachable from the root.
func TestRoot_Commands(t *testing.T) {
	root := newRootCommand(nil, nil)
	var have []string
	for _, c := range root.Commands() {
		have = append(have, c.Name())
	}
	for _, want := range []string{"run", "validate", "version", "modbus", "opcua", "buffer", "verify", "watch"} {
		if !slices.Contains(have, want) {
			t.Errorf("no %q command under floorlink (have %v)", want, have)
		}
	}
	for _, path := range [][]string{{"modbus", "scan"}, {"opcua", "browse"}, {"opcua", "cert"}} {
		if c, _, err := root.Find(path); err != nil || c.Name() != path[1] {
			t.Errorf("floorlink %v: not found (%v)", path, err)
		}
	}
}
