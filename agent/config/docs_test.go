package config

import (
	"flag"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the generated field reference in docs/configuration.md")

const docsPath = "../../docs/configuration.md"

const (
	beginGenerated = "<!-- BEGIN GENERATED: field reference (go test ./agent/config -run TestDocs_Reference -update) -->\n"
	endGenerated   = "<!-- END GENERATED -->\n"
)

func readDocs(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(docsPath)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDocs_Reference checks that the field reference in docs/configuration.md is the one the
// field table generates; -update rewrites it.
func TestDocs_Reference(t *testing.T) {
	doc := readDocs(t)
	i, j := strings.Index(doc, beginGenerated), strings.Index(doc, endGenerated)
	if i < 0 || j < i {
		t.Fatalf("%s: no generated field reference between %q and %q", docsPath, beginGenerated, endGenerated)
	}
	want := doc[:i+len(beginGenerated)] + reference() + doc[j:]
	if want == doc {
		return
	}
	if *update {
		if err := os.WriteFile(docsPath, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s: the field reference differs from the field table; run go test ./agent/config -run TestDocs_Reference -update and review the diff", docsPath)
}

// schemaPaths walks the File type by its yaml tags and returns the generic path of every key
// the file may hold, with the Go type behind it.
func schemaPaths() map[string]reflect.Type {
	out := map[string]reflect.Type{}
	leaf := map[reflect.Type]bool{reflect.TypeFor[Secret](): true, reflect.TypeFor[Deadband](): true}
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := range t.NumField() {
			sf := t.Field(i)
			name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
			if !sf.IsExported() || name == "" || name == "-" {
				continue
			}
			path := joinPath(prefix, name)
			ft := sf.Type
			out[path] = ft
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			switch {
			case leaf[ft]:
			case ft.Kind() == reflect.Struct:
				walk(ft, path)
			case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
				walk(ft.Elem(), path+"[]")
			}
		}
	}
	walk(reflect.TypeFor[File](), "")
	return out
}

// TestDocs_EveryField fails when a key of the File type has no entry in the field table or no
// mention in docs/configuration.md, or when the table names a key the type does not have.
func TestDocs_EveryField(t *testing.T) {
	doc := readDocs(t)
	paths := schemaPaths()
	if len(paths) < 50 {
		t.Fatalf("walked only %d paths; the walker is broken", len(paths))
	}
	for path := range paths {
		if _, ok := lookupField(path); !ok {
			t.Errorf("%s: no entry in the field table (defaults.go)", path)
		}
		if !strings.Contains(doc, "`"+path+"`") {
			t.Errorf("%s: not documented in %s", path, docsPath)
		}
	}
	seen := map[string]bool{}
	for _, f := range fields {
		if _, ok := paths[f.path]; !ok {
			t.Errorf("%s: in the field table but not a key of File", f.path)
		}
		if seen[f.path] {
			t.Errorf("%s: twice in the field table", f.path)
		}
		seen[f.path] = true
		if f.typ == "" || f.doc == "" || (f.def == "" && f.note == "") {
			t.Errorf("%s: the table entry needs a type, a description, and a default or a note", f.path)
		}
	}
}

// TestDocs_Examples parses every ```yaml block of docs/configuration.md: each must be a whole
// file without a problem.
func TestDocs_Examples(t *testing.T) {
	doc := readDocs(t)
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(doc, -1)
	if len(blocks) < 3 {
		t.Fatalf("found %d yaml examples in %s, want at least 3", len(blocks), docsPath)
	}
	opts := testOptions()
	opts.ReadFile = func(string) ([]byte, error) { return []byte("pw\n"), nil }
	for i, b := range blocks {
		if _, err := Parse(docsPath+" example "+strconv.Itoa(i+1), []byte(b[1]), opts); err != nil {
			t.Errorf("example %d:\n%s\nproblems:\n%v", i+1, b[1], err)
		}
	}
}

// TestFields_DefaultsApplied checks that every default in the field table is the value Parse
// gives a key the file leaves out, reading the table's text independently of the decoder.
func TestFields_DefaultsApplied(t *testing.T) {
	f := mustParse(t, "/etc/floorlink/x.yaml", `
gateway: {id: gw-1, site: s, area: a, line: l}
mqtt: {brokers: ["ssl://b:8883"], tls: {}}
devices:
  - {name: tcp, protocol: modbus-tcp, address: "h:502", tags: [{name: t, address: "40001", type: uint16}]}
  - {name: rtu, protocol: modbus-rtu, address: /dev/ttyS0, unit_id: 1, tags: [{name: t, address: "40001", type: uint16}]}
`)
	checked := 0
	for _, fd := range fields {
		if fd.def == "" {
			continue
		}
		device := 0
		if strings.HasPrefix(fd.path, "devices[].serial.") {
			device = 1
		}
		got := fieldValue(t, reflect.ValueOf(f).Elem(), fd.path, device)
		var want any
		switch got.(type) {
		case string:
			want = fd.def
			if fd.typ == "path" {
				want = filepath.Join("/etc/floorlink", fd.def)
			}
		case int:
			v, err := strconv.Atoi(fd.def)
			if err != nil {
				t.Fatalf("%s: default %q: %v", fd.path, fd.def, err)
			}
			want = v
		case int64:
			v, ok := parseSize(fd.def)
			if !ok {
				t.Fatalf("%s: default %q is not a size", fd.path, fd.def)
			}
			want = v
		case float64:
			v, err := strconv.ParseFloat(fd.def, 64)
			if err != nil || math.IsNaN(v) {
				t.Fatalf("%s: default %q: %v", fd.path, fd.def, err)
			}
			want = v
		case time.Duration:
			v, err := time.ParseDuration(fd.def)
			if err != nil {
				t.Fatalf("%s: default %q: %v", fd.path, fd.def, err)
			}
			want = v
		case bool:
			want = fd.def == "true"
		case Deadband:
			v, err := strconv.ParseFloat(fd.def, 64)
			if err != nil {
				t.Fatalf("%s: default %q: %v", fd.path, fd.def, err)
			}
			want = Deadband{Value: v}
		default:
			t.Fatalf("%s: no check for a default of type %T", fd.path, got)
		}
		if got != want {
			t.Errorf("%s: Parse applies %v, the table says %v", fd.path, got, want)
		}
		checked++
	}
	if checked < 25 {
		t.Errorf("checked %d defaults, want at least 25", checked)
	}
}

// fieldValue follows a generic path through v by yaml tags, taking item 0 of every list
// (device for the devices list).
func fieldValue(t *testing.T, v reflect.Value, path string, device int) any {
	t.Helper()
	for part := range strings.SplitSeq(path, ".") {
		name, list := strings.CutSuffix(part, "[]")
		found := false
		for i := range v.NumField() {
			if tag, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ","); tag == name {
				v, found = v.Field(i), true
				break
			}
		}
		if !found {
			t.Fatalf("%s: no field %s", path, name)
		}
		if v.Kind() == reflect.Pointer {
			v = v.Elem()
		}
		if list {
			idx := 0
			if name == "devices" {
				idx = device
			}
			v = v.Index(idx)
		}
	}
	return v.Interface()
}
