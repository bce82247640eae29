// Package crossbuild builds the agent for the ARM gateway targets and runs it under qemu-user:
// the binaries start, report their version, and keep a buffer across a restart, on a file an
// amd64 build then reads.
package crossbuild_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/floorlink/floorlink/agent"
	"github.com/floorlink/floorlink/buffer"
	"github.com/floorlink/floorlink/simulators/simtest"
)

var targets = []struct {
	name, goarch, goarm, qemu string
}{
	{"arm64", "arm64", "", "qemu-aarch64-static"},
	{"armv7", "arm", "7", "qemu-arm-static"},
}

func build(t *testing.T, goarch, goarm string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "floorlink")
	cmd := exec.Command("go", "build", "-trimpath", "-tags", makeVar(t, "BUILDTAGS"), "-ldflags", "-s -w -X main.version=smoke", "-o", bin,
		"github.com/floorlink/floorlink/cmd/floorlink")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch, "GOARM="+goarm)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build for %s: %v\n%s", goarch, err, out)
	}
	return bin
}

func TestCrossBuild_QEMU(t *testing.T) {
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			qemu, err := exec.LookPath(tg.qemu)
			if err != nil {
				t.Fatalf("%s not found: run `make deps` (installs Debian's qemu-user-static)", tg.qemu)
			}
			bin := build(t, tg.goarch, tg.goarm)
			if out, err := exec.Command("file", bin).Output(); err == nil && !strings.Contains(string(out), "statically linked") {
				t.Errorf("%s build is not static: %s", tg.name, out)
			}

			out, err := exec.Command(qemu, bin, "version").CombinedOutput()
			if err != nil || !strings.HasPrefix(string(out), "floorlink smoke") {
				t.Fatalf("version under %s: %v: %s", tg.qemu, err, out)
			}

			sim := simtest.Start(t, simtest.Options{Line: simtest.LineConfig{Seed: 3}})
			dir := t.TempDir()
			cfg := filepath.Join(dir, "smoke.yaml")
			// The broker port is closed: the agent keeps buffering, which is what this checks.
			if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`gateway: {id: gw-smoke, site: s, area: a, line: l, data_dir: %q}
mqtt: {brokers: ["tcp://127.0.0.1:1"]}
devices:
  - name: m1
    protocol: modbus-tcp
    address: %q
    unit_id: 1
    poll_interval: 100ms
    tags:
      - {name: tick, address: "40002", type: uint32}
      - {name: temperature, address: "40011", type: float32}
`, filepath.Join(dir, "data"), sim.ModbusAddr())), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(qemu, bin, "validate", cfg).CombinedOutput(); err != nil || !strings.Contains(string(out), ": ok") {
				t.Fatalf("validate under %s: %v: %s", tg.qemu, err, out)
			}
			bad := filepath.Join(dir, "bad.yaml")
			os.WriteFile(bad, []byte("gateway: {id: gw}\n"), 0o644)
			if err := exec.Command(qemu, bin, "validate", bad).Run(); exitCode(err) != 2 {
				t.Fatalf("validate of a bad file under %s: %v, want exit 2", tg.qemu, err)
			}
			path := filepath.Join(dir, "data", agent.BufferFile)
			first := runUntilStored(t, qemu, bin, cfg, path, 0)
			second := runUntilStored(t, qemu, bin, cfg, path, first.head)
			if second.epoch != first.epoch {
				t.Errorf("epoch changed across a restart: %s then %s", first.epoch, second.epoch)
			}
			t.Logf("%s: head %d after the first run, %d after the second, epoch %s", tg.name, first.head, second.head, first.epoch)
		})
	}
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

type bufState struct {
	head  uint64
	epoch string
}

// runUntilStored runs the agent under qemu until its buffer holds records beyond after, stops it
// with SIGTERM and reads the file back with this (amd64) build.
func runUntilStored(t *testing.T, qemu, bin, cfg, path string, after uint64) bufState {
	t.Helper()
	log, err := os.CreateTemp(t.TempDir(), "agent-*.log")
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command(qemu, bin, "run", "-c", cfg)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("agent log:\n%s", b)
		}
	}()
	// The agent holds the file; its log says how many records it stored when it stops. Poll the
	// log for the connected event's effect: give it time to poll, then stop and count.
	deadline := time.Now().Add(60 * time.Second)
	for {
		b, _ := os.ReadFile(log.Name())
		if strings.Contains(string(b), "msg=connected") && strings.Contains(string(b), "agent running") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent under qemu did not connect to the simulator within 60s")
		}
		<-time.After(100 * time.Millisecond)
	}
	<-time.After(time.Second) // let it poll about ten cycles: the amount is what is measured below
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("agent exited with %v after SIGTERM, want 0", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("agent under qemu did not stop within 20s of SIGTERM")
	}
	buf, err := buffer.Open(path, buffer.Options{}, nil)
	if err != nil {
		t.Fatalf("open the buffer the %s build wrote: %v", filepath.Base(qemu), err)
	}
	defer buf.Close()
	if mv, _ := buf.MovedAside(); mv != "" {
		t.Fatalf("amd64 build moved aside the buffer file the ARM build wrote: %s", mv)
	}
	st := bufState{head: buf.Head(), epoch: buf.Epoch()}
	if st.head <= after {
		t.Fatalf("buffer head %d after the run, want more than %d", st.head, after)
	}
	return st
}

// makeVar reads a `NAME := value` line of the repository's Makefile, so that the tests build
// exactly as `make build` does.
func makeVar(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("../../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" := "); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %s := line in the Makefile", name)
	return ""
}

// floorBytes is the dependency floor of ../shared/research/limits.md: a stripped static amd64
// binary linking bbolt, paho, gopcua and goburrow, 6.8 MiB.
const floorBytes = 6.8 * (1 << 20)

// TestBinarySize: the stripped amd64 agent, built as `make build` builds it, is at most twice
// the dependency floor (issue 3). Its size is in docs/benchmarks.md.
func TestBinarySize(t *testing.T) {
	bin := build(t, "amd64", "")
	st, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	ratio := float64(st.Size()) / floorBytes
	t.Logf("floorlink amd64, stripped: %d bytes (%.2f MiB), %.2f× the floor", st.Size(), float64(st.Size())/(1<<20), ratio)
	// The usual cause of a jump: something reachable calls reflect's MethodByName (text/template,
	// html/template), and the linker then keeps every exported method of every type.
	cmd := exec.Command("go", "build", "-tags", makeVar(t, "BUILDTAGS"), "-ldflags=-dumpdep", "-o", os.DevNull,
		"github.com/floorlink/floorlink/cmd/floorlink")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go build -ldflags=-dumpdep: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "<ReflectMethod>") {
			t.Errorf("dead code elimination is off: %s", line)
			break
		}
	}
	if ratio > 2 {
		t.Errorf("the agent binary is %.2f× the dependency floor (%d bytes): at most 2× allowed; look for what turned off dead code elimination (go build -ldflags=-dumpdep | grep ReflectMethod) or what grew", ratio, st.Size())
	}
}
