package floorlink_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"path"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/floorlink/floorlink"

// allowedImports is DESIGN.md's table of direct imports between our packages, as patterns
// relative to the module ("drivers/..." means drivers and everything below it). Standard library
// and third-party imports are not restricted here. A package not matched by any row may import
// nothing of ours.
var allowedImports = []struct {
	pkg   string
	may   []string
	notes string
}{
	{"cmd/floorlink", []string{"agent/...", "drivers/...", "buffer", "verify", "watch"}, "thin main and its commands"},
	{"cmd/floorlink/...", []string{"agent/...", "drivers/...", "buffer", "verify"}, "tests that run the built binaries"},
	{"cmd/plcsim", []string{"simulators/..."}, "thin main"},
	{"packaging", nil, "builds the .deb files with nfpm; never shipped"},
	{"cmd/floorlink-demo", []string{"agent", "agent/config", "simulators/...", "watch"}, "dev launcher, never shipped: plcsim, an embedded broker and the agent in one process"},
	{"agent", []string{"agent/...", "drivers/...", "buffer"}, "wiring: everything below"},
	{"agent/config", nil, "describes the file, not the parts"},
	{"agent/record", nil, "leaf vocabulary"},
	{"drivers", nil, "leaf vocabulary"},
	{"agent/kpi", []string{"drivers", "agent/record"}, "pure engine"},
	{"agent/publish", []string{"agent/record", "agent/publish/sparkplugpb"}, "reads the buffer through its own interface"},
	{"agent/publish/sparkplugpb", nil, "generated Sparkplug B protobuf code"},
	{"agent/statuspage", nil, "the embedded status page"},
	{"watch", []string{"agent/publish/sparkplugpb"}, "live view of the MQTT contract and Sparkplug B"},
	{"agent/publish/mqtttest", nil, "test helper"},
	{"drivers/modbus", []string{"drivers"}, "one protocol"},
	{"drivers/opcua/...", []string{"drivers", "drivers/opcua/internal/uatest"}, "one protocol; uatest starts node-opcua for its tests"},
	{"buffer", nil, "bytes in, bytes out"},
	{"verify", nil, "consumes the MQTT contract; imports nothing of ours"},
	{"simulators/...", []string{"simulators/..."}, "never the drivers: no shared encoder"},
}

// testOnlyImports may be added by any package's tests.
var testOnlyImports = []string{"simulators/simtest", "agent/publish/mqtttest", "cmd/floorlink/floorlinktest"}

func match(pattern, pkg string) bool {
	if rest, ok := strings.CutSuffix(pattern, "/..."); ok {
		return pkg == rest || strings.HasPrefix(pkg, rest+"/")
	}
	return pkg == pattern
}

// rule returns the row for pkg: its own row, else the longest "/..." row that covers it.
func rule(pkg string) (may []string, found bool) {
	best := -1
	for i, r := range allowedImports {
		if r.pkg == pkg {
			return r.may, true
		}
		if match(r.pkg, pkg) && (best < 0 || len(r.pkg) > len(allowedImports[best].pkg)) {
			best = i
		}
	}
	if best < 0 {
		return nil, false
	}
	return allowedImports[best].may, true
}

// checkEdge returns an error when pkg (relative to the module) may not import dep.
func checkEdge(pkg, dep string, test bool) error {
	if dep == pkg {
		return nil // an external test package importing the package it tests
	}
	may, _ := rule(pkg)
	if test {
		may = append(append([]string(nil), may...), testOnlyImports...)
	}
	for _, m := range may {
		if match(m, dep) {
			return nil
		}
	}
	return fmt.Errorf("%s imports %s: not allowed by DESIGN.md's table (may import: %v)", pkg, dep, may)
}

func TestImportRules_Checker(t *testing.T) {
	cases := []struct {
		pkg, dep string
		test     bool
		ok       bool
	}{
		{"buffer", "agent/record", false, false},       // the buffer must never see a Record
		{"simulators/modbus", "drivers", false, false}, // no encoder shared with the drivers
		{"drivers/modbus", "agent", false, false},      // arrows point one way
		{"agent/publish", "buffer", false, false},      // publish declares its own Source
		{"agent/config", "drivers", false, false},      // config describes the file only
		{"agent/kpi", "agent/publish", false, false},
		{"cmd/plcsim", "agent", false, false},
		{"drivers/modbus", "simulators/line", true, false}, // only simtest, not the model
		{"agent", "buffer", false, true},
		{"agent", "drivers/modbus", false, true},
		{"agent/publish", "agent/record", false, true},
		{"drivers/modbus", "drivers", false, true},
		{"drivers/modbus", "simulators/simtest", true, true},
		{"agent", "agent/publish/mqtttest", true, true},
		{"simulators/simtest", "simulators/line", false, true},
		{"cmd/floorlink", "buffer", false, true},
	}
	for _, c := range cases {
		err := checkEdge(c.pkg, c.dep, c.test)
		if (err == nil) != c.ok {
			t.Errorf("checkEdge(%s -> %s, test=%v) = %v, want ok=%v", c.pkg, c.dep, c.test, err, c.ok)
		}
	}
}

// TestImportRules checks every package of the module against DESIGN.md's dependency table, over
// `go list -json` (Imports and TestImports/XTestImports), as std's go/build deps_test does.
func TestImportRules(t *testing.T) {
	out, err := exec.Command("go", "list", "-json", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	var problems []string
	seen := 0
	for {
		var p struct {
			ImportPath                         string
			Imports, TestImports, XTestImports []string
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		pkg := rel(p.ImportPath)
		if pkg == "" {
			continue // the module root holds only this test
		}
		seen++
		if _, ok := rule(pkg); !ok && !strings.HasPrefix(pkg, "cmd/") {
			problems = append(problems, fmt.Sprintf("%s has no row in the dependency table; add one (DESIGN.md first)", pkg))
		}
		for _, set := range []struct {
			imports []string
			test    bool
		}{{p.Imports, false}, {p.TestImports, true}, {p.XTestImports, true}} {
			for _, imp := range set.imports {
				dep := rel(imp)
				if dep == "" || !strings.HasPrefix(imp, module+"/") {
					continue
				}
				if err := checkEdge(pkg, dep, set.test); err != nil {
					problems = append(problems, err.Error())
				}
			}
		}
	}
	if seen == 0 {
		t.Fatal("go list found no packages")
	}
	sort.Strings(problems)
	for _, p := range problems {
		t.Error(p)
	}
}

func rel(importPath string) string {
	if importPath == module {
		return ""
	}
	r, ok := strings.CutPrefix(importPath, module+"/")
	if !ok {
		return ""
	}
	return path.Clean(r)
}
