package pkgtest

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/floorlink/floorlink/cmd/floorlink/floorlinktest"
)

// TestUnit_WatchdogKillIsRestarted: systemd's watchdog kills a stuck agent with SIGABRT
// (WatchdogSignal's default) and restarts it only if the exit is not one of
// RestartPreventExitStatus (kept for bad configs). Run with the shipped unit's Environment=,
// the agent dies by the signal, with its goroutine dump in the log; with Go's default
// traceback it would exit 2, and stay down.
func TestUnit_WatchdogKillIsRestarted(t *testing.T) {
	svc := parseUnit(t, filepath.Join("..", "..", "..", "packaging", "files", "floorlink.service"))["Service"]
	var env []string
	for _, e := range svc["Environment"] {
		env = append(env, strings.Fields(e)...)
	}
	prevent := strings.Fields(strings.Join(svc["RestartPreventExitStatus"], " "))
	if len(prevent) == 0 {
		t.Fatal("the unit has no RestartPreventExitStatus: this test checks the watchdog's kill against it")
	}
	// No core files from this test, as LimitCORE=0 in the unit.
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_CORE, &lim); err == nil && lim.Cur != 0 {
		lim.Cur = 0
		syscall.Setrlimit(syscall.RLIMIT_CORE, &lim)
	}

	cfg := filepath.Join(t.TempDir(), "floorlink.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`gateway: {id: gw-wd, site: s, area: a, line: l, data_dir: %q}
mqtt: {brokers: ["tcp://127.0.0.1:1"]}
http: {listen: ""}
`, filepath.Join(filepath.Dir(cfg), "data"))), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		env  []string
		unit bool
	}{
		{"the unit's environment", env, true},
		{"Go's default traceback", []string{"GOTRACEBACK=single"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := floorlinktest.Start(t, agentBin, cfg, c.env...)
			deadline := time.Now().Add(20 * time.Second)
			for !strings.Contains(a.Log(), "agent running") {
				if time.Now().After(deadline) {
					t.Fatal("agent not running within 20s")
				}
				<-time.After(20 * time.Millisecond) // the polling interval of a wait with a deadline
			}
			code := a.Stop(syscall.SIGABRT, 20*time.Second)
			restarted := code == -1 || !slices.Contains(prevent, strconv.Itoa(code))
			if !strings.Contains(a.Log(), "goroutine ") {
				t.Errorf("no goroutine dump in the log after SIGABRT")
			}
			t.Logf("exit code %d (-1: killed by the signal); RestartPreventExitStatus=%v; restarted: %v", code, prevent, restarted)
			if c.unit && !restarted {
				t.Errorf("with the unit's environment %v the watchdog's SIGABRT ends the agent with exit %d, which RestartPreventExitStatus=%v keeps down", env, code, prevent)
			}
			if !c.unit && restarted {
				t.Logf("Go's default traceback no longer exits 2 on SIGABRT: GOTRACEBACK=crash in the unit may no longer be needed")
			}
		})
	}
}
