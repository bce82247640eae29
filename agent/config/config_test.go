package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// testSecret is the password the fixtures get through ${MQTT_PASSWORD}; tests grep for it.
const testSecret = "s3cr3t-Pa55w0rd-7f1c"

// testEnv is the environment every fixture is parsed with.
var testEnv = map[string]string{
	"MQTT_USER":     "floorlink",
	"MQTT_PASSWORD": testSecret,
	"EMPTY":         "",
}

func testOptions() Options {
	return Options{LookupEnv: func(k string) (string, bool) { v, ok := testEnv[k]; return v, ok }}
}

// TestParse_Bad runs every testdata/bad/<case>.yaml and compares the problems with the
// hand-written <case>.err, line for line: position, path and message.
func TestParse_Bad(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 30 {
		t.Fatalf("got %d bad fixtures, want at least 30", len(files))
	}
	for _, path := range files {
		name := strings.TrimSuffix(filepath.Base(path), ".yaml")
		t.Run(name, func(t *testing.T) {
			want, err := os.ReadFile(strings.TrimSuffix(path, ".yaml") + ".err")
			if err != nil {
				t.Fatal(err)
			}
			f, err := Load(path, testOptions())
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("got error %v (%T), want *Error", err, err)
			}
			if diff := cmp.Diff(strings.Split(strings.TrimSpace(string(want)), "\n"), strings.Split(err.Error(), "\n")); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
			syntax := strings.Contains(err.Error(), "YAML syntax")
			if syntax != (f == nil) {
				t.Errorf("got File %v for a syntax error %v; want a File exactly when the YAML is valid", f != nil, syntax)
			}
			if f != nil && f.Gateway.Location == nil {
				t.Error("got nil Gateway.Location, want a zone even in a file with problems")
			}
		})
	}
}

// TestParse_Good checks that every testdata/good/*.yaml parses without a problem.
func TestParse_Good(t *testing.T) {
	files, err := filepath.Glob("testdata/good/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no good fixtures")
	}
	for _, path := range files {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".yaml"), func(t *testing.T) {
			f, err := Load(path, testOptions())
			if err != nil {
				t.Fatalf("got problems:\n%v", err)
			}
			if f == nil {
				t.Fatal("got nil File")
			}
		})
	}
}
