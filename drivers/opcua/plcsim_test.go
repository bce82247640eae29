package opcua

import (
	"bufio"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/floorlink/floorlink/drivers"
	"github.com/floorlink/floorlink/drivers/opcua/internal/uatest"
)

// startPlcsim builds cmd/plcsim and runs it serving OPC UA only on a free loopback port; it
// returns the endpoint it printed. (The driver's tests may not import the simulators: they run
// the binary, as an integrator would.)
func startPlcsim(t *testing.T, args ...string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "plcsim")
	build := exec.Command("go", "build", "-o", bin, "./cmd/plcsim")
	build.Dir = uatest.Root()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build plcsim: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, append([]string{"--opcua", "127.0.0.1:0"}, args...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	lines := make(chan string, 4)
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		_ = cmd.Wait()
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
	re := regexp.MustCompile(`^opcua listening on (opc\.tcp://127\.0\.0\.1:\d+)$`)
	timeout := time.After(20 * time.Second)
	for {
		select {
		case l := <-lines:
			if m := re.FindStringSubmatch(l); m != nil {
				return m[1]
			}
		case <-timeout:
			t.Fatal("plcsim printed no opcua endpoint within 20s")
		}
	}
}

// TestDriver_Plcsim_Types: poll and subscribe against plcsim's OPC UA server (gopcua's server
// package) deliver every type of machine 1 with its values, good, with source timestamps; the
// tick keeps changing in subscribe mode, each change within a second.
func TestDriver_Plcsim_Types(t *testing.T) {
	endpoint := startPlcsim(t, "--speed", "10")
	tags := []struct {
		name string
		typ  drivers.DataType
		want string // "" for a value that changes
	}{
		{"State", drivers.TypeInt32, ""}, {"Tick", drivers.TypeUint32, ""}, {"Types.Boolean", drivers.TypeBool, ""},
		{"Types.SByte", drivers.TypeInt8, "-100"}, {"Types.Byte", drivers.TypeUint8, ""}, {"Types.Int16", drivers.TypeInt16, "-12345"},
		{"Types.UInt16", drivers.TypeUint16, "48879"}, {"Types.Int32", drivers.TypeInt32, "-123456789"},
		{"Types.UInt32", drivers.TypeUint32, "3456789012"}, {"Types.Int64", drivers.TypeInt64, "-1234567890123456789"},
		{"Types.UInt64", drivers.TypeUint64, "12345678901234567890"}, {"Types.Float", drivers.TypeFloat32, "3.1415927410125732"},
		{"Types.Double", drivers.TypeFloat64, ""}, {"Types.String", drivers.TypeString, `"Press 1"`},
		{"Types.DateTime", drivers.TypeDateTime, ""}, {"Types.ByteString", drivers.TypeBytes, ""},
		{"Types.DoubleArray", drivers.TypeFloat64, ""}, {"Types.Int32Array", drivers.TypeInt32, ""},
	}
	for _, mode := range []string{ModePoll, ModeSubscribe} {
		t.Run("mode="+mode, func(t *testing.T) {
			dev := drivers.Device{Name: "m1", Protocol: Protocol, Address: endpoint, PollInterval: 200 * time.Millisecond,
				OPCUA: drivers.OPCUAOptions{Mode: mode, SamplingInterval: 100 * time.Millisecond, PublishingInterval: 100 * time.Millisecond}}
			for _, tg := range tags {
				dev.Tags = append(dev.Tags, drivers.Tag{Name: tg.name, Address: "ns=2;s=Line1.M1." + tg.name, Type: tg.typ})
			}
			d, err := New(dev, Options{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			c := &collector{}
			run(t, d, c)
			waitFor(t, 20*time.Second, func() error {
				for i, tg := range tags {
					s, ok := c.last(i)
					switch {
					case !ok:
						return fmt.Errorf("%s: no sample", tg.name)
					case s.Quality != drivers.QualityGood:
						return fmt.Errorf("%s: %s %s", tg.name, s.Quality, s.Reason)
					case tg.want != "" && s.Value.String() != tg.want:
						return fmt.Errorf("%s: got %s, want %s", tg.name, s.Value, tg.want)
					case s.SourceTime.IsZero():
						return fmt.Errorf("%s: no source timestamp", tg.name)
					}
				}
				return nil
			})
			if f := c.eventsOf(drivers.EventFault); len(f) > 0 {
				t.Errorf("fault events: %v", f)
			}
			// Tick changes several times a second at speed 10: each change arrives within 1 s.
			from := time.Now()
			<-time.After(3 * time.Second) // the test's input: a window of changes to look at
			ticks := c.since(1, from)
			if len(ticks) < 3 {
				t.Fatalf("%d tick samples in 3s, want at least 3", len(ticks))
			}
			for i := 1; i < len(ticks); i++ {
				if gap := ticks[i].read.Sub(ticks[i-1].read); gap > time.Second {
					t.Errorf("tick samples %v apart, want under 1s", gap)
				}
			}
		})
	}
}
