package config

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// FuzzParse feeds the decoder arbitrary files. It must never panic; its problems must be sorted,
// placed, and free of the secret every ${VAR} expands to; and a file without problems must
// decode the same twice and survive a round trip through YAML written back from the File.
func FuzzParse(f *testing.F) {
	for _, dir := range []string{"testdata/good", "testdata/bad"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
		if err != nil {
			f.Fatal(err)
		}
		for _, name := range files {
			b, err := os.ReadFile(name)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	opts := Options{
		LookupEnv: func(name string) (string, bool) { return testSecret, name != "UNSET" },
		ReadFile:  func(string) ([]byte, error) { return []byte(testSecret + "\n"), nil },
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 16<<10 {
			return
		}
		file, err := Parse("/etc/floorlink/fuzz.yaml", data, opts)
		if err == nil && file == nil {
			t.Fatal("got neither a File nor an error")
		}
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) || len(ce.Problems) == 0 {
				t.Fatalf("got %v (%T), want an *Error with problems", err, err)
			}
			syntax := false
			for i, p := range ce.Problems {
				syntax = syntax || strings.HasPrefix(p.Msg, "YAML syntax") || strings.HasPrefix(p.Msg, "cannot parse")
				if p.Line < 1 && !strings.HasPrefix(p.Msg, "cannot parse") || p.Col < 0 || p.Msg == "" {
					t.Errorf("problem without a place or message: %#v", p)
				}
				if i > 0 && p.Line < ce.Problems[i-1].Line && p.Line > 0 {
					t.Errorf("problems out of order: %v before %v", ce.Problems[i-1], p)
				}
			}
			if syntax != (file == nil) {
				t.Errorf("got File %v with syntax error %v: want a File exactly when the YAML is valid", file != nil, syntax)
			}
			if !bytes.Contains(data, []byte("Pa55")) && strings.Contains(err.Error(), "Pa55") {
				t.Errorf("a problem shows the secret:\n%v", err)
			}
			if file == nil {
				return
			}
		}
		if file.Gateway.Location == nil {
			t.Error("got nil Location")
		}
		file.Buses()
		if err != nil {
			return
		}

		again, err := Parse("/etc/floorlink/fuzz.yaml", data, opts)
		if err != nil {
			t.Fatalf("second parse: %v", err)
		}
		if diff := cmp.Diff(file, again, fileCmp...); diff != "" {
			t.Fatalf("two parses differ (-first +second):\n%s", diff)
		}

		out, ok := emitYAML(file)
		if !ok {
			return
		}
		back, err := Parse("/etc/floorlink/fuzz.yaml", out, opts)
		if err != nil {
			t.Fatalf("the File written back does not parse:\n%s\n%v", out, err)
		}
		// Passwords are not written back.
		ignore := []cmp.Option{cmpopts.IgnoreFields(MQTT{}, "Password", "PasswordFile"),
			cmpopts.IgnoreFields(Device{}, "Password", "PasswordFile")}
		if diff := cmp.Diff(file, back, append(slices.Clone(fileCmp), ignore...)...); diff != "" {
			t.Fatalf("round trip differs (-parsed +written back):\n%s\nwritten back:\n%s", diff, out)
		}
	})
}

// emitYAML writes f back as YAML: block mappings and lists, every string double-quoted with $
// doubled, so that the decoder reads back exactly f's values. ok is false when f holds a string
// this writer cannot express (invalid UTF-8).
func emitYAML(f *File) (out []byte, ok bool) {
	var b bytes.Buffer
	ok = true
	var value func(v reflect.Value, indent string)
	str := func(s string) string {
		if !utf8.ValidString(s) {
			ok = false
		}
		return strconv.Quote(strings.ReplaceAll(s, "$", "$$"))
	}
	scalar := func(v reflect.Value) (string, bool) {
		switch x := v.Interface().(type) {
		case time.Duration:
			return strconv.Quote(x.String()), true
		case Secret:
			return "", false
		case Deadband:
			return strconv.Quote(x.String()), true
		case *IdealCycle: // a constant is written as a duration, a tag as a mapping
			if x != nil && x.Tag == "" && x.Device == "" {
				return strconv.Quote(x.Value.String()), true
			}
			return "", false
		case string:
			return str(x), true
		case bool:
			return strconv.FormatBool(x), true
		case int, int64:
			return strconv.FormatInt(v.Int(), 10), true
		case float64:
			return strconv.FormatFloat(x, 'g', -1, 64), true
		}
		return "", false
	}
	value = func(v reflect.Value, indent string) {
		if v.Kind() == reflect.Pointer {
			v = v.Elem()
		}
		for i := range v.NumField() {
			sf := v.Type().Field(i)
			name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
			if !sf.IsExported() || name == "" || name == "-" || name == "password_file" {
				continue
			}
			fv := v.Field(i)
			if s, isScalar := scalar(fv); isScalar {
				b.WriteString(indent + name + ": " + s + "\n")
				continue
			}
			switch fv.Kind() {
			case reflect.Pointer:
				if !fv.IsNil() {
					b.WriteString(indent + name + ":\n")
					value(fv, indent+"  ")
				}
			case reflect.Struct:
				if fv.Type() == reflect.TypeFor[Secret]() {
					continue
				}
				b.WriteString(indent + name + ":\n")
				value(fv, indent+"  ")
			case reflect.Map: // map[int64]string: tags[].enum, assets[].state.map
				if fv.Len() == 0 {
					continue
				}
				keys := fv.MapKeys()
				slices.SortFunc(keys, func(a, b reflect.Value) int {
					switch {
					case a.Int() < b.Int():
						return -1
					case a.Int() > b.Int():
						return 1
					}
					return 0
				})
				b.WriteString(indent + name + ":\n")
				for _, k := range keys {
					b.WriteString(indent + "  " + strconv.FormatInt(k.Int(), 10) + ": " + str(fv.MapIndex(k).String()) + "\n")
				}
			case reflect.Slice:
				if fv.Len() == 0 {
					continue
				}
				b.WriteString(indent + name + ":\n")
				for j := range fv.Len() {
					item := fv.Index(j)
					if s, isScalar := scalar(item); isScalar {
						b.WriteString(indent + "  - " + s + "\n")
						continue
					}
					b.WriteString(indent + "  -\n")
					value(item, indent+"    ")
				}
			}
		}
	}
	value(reflect.ValueOf(f).Elem(), "")
	return b.Bytes(), ok
}
