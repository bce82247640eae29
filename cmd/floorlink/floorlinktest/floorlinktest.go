// Package floorlinktest builds the floorlink binary and runs it as a subprocess for the tests
// that treat the agent as a black box (end-to-end, chaos, performance): the product is the
// process, with its own signals, exit codes and log.
package floorlinktest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Build compiles the agent into dir without -race (the race detector runs on the tests' own
// code; the agent under test is the product as shipped) and returns the binary's path. Call it
// once from TestMain.
func Build(dir string) (string, error) {
	bin := filepath.Join(dir, "floorlink")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/floorlink/floorlink/cmd/floorlink")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build floorlink: %v\n%s", err, out)
	}
	return bin, nil
}

// BuildPlcsim compiles plcsim into dir, as Build does the agent, for tests that run the
// simulator as its own process (its clock flags, SIGSTOP).
func BuildPlcsim(dir string) (string, error) {
	bin := filepath.Join(dir, "plcsim")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/floorlink/floorlink/cmd/plcsim")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build plcsim: %v\n%s", err, out)
	}
	return bin, nil
}

// Agent is a running floorlink subprocess. Its output goes to a log file, printed when the
// test fails.
type Agent struct {
	t       testing.TB
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
}

// Start runs `bin run -c cfgPath --log-level debug` with env added to the test's environment.
// The process is killed at the end of the test if it still runs.
func Start(t testing.TB, bin, cfgPath string, env ...string) *Agent {
	t.Helper()
	return StartArgs(t, bin, []string{"run", "-c", cfgPath, "--log-level", "debug"}, env...)
}

// StartArgs runs bin with args (e.g. run with more flags) and env added to the test's
// environment, as Start does.
func StartArgs(t testing.TB, bin string, args []string, env ...string) *Agent {
	t.Helper()
	logFile, err := os.CreateTemp(t.TempDir(), "agent-*.log")
	if err != nil {
		t.Fatal(err)
	}
	a := &Agent{t: t, logPath: logFile.Name(), done: make(chan struct{})}
	a.cmd = exec.Command(bin, args...)
	a.cmd.Env = append(os.Environ(), env...)
	a.cmd.Stdout, a.cmd.Stderr = logFile, logFile
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = a.cmd.Wait()
		logFile.Close()
		close(a.done)
	}()
	t.Cleanup(func() {
		select {
		case <-a.done:
		default:
			_ = a.cmd.Process.Kill()
			<-a.done
		}
		if t.Failed() {
			t.Logf("agent log %s:\n%s", a.logPath, a.Log())
		}
	})
	return a
}

// PID is the agent's process id, for /proc readings.
func (a *Agent) PID() int { return a.cmd.Process.Pid }

// Done is closed when the process has exited.
func (a *Agent) Done() <-chan struct{} { return a.done }

// Log returns what the agent printed so far.
func (a *Agent) Log() string {
	b, _ := os.ReadFile(a.logPath)
	return string(b)
}

// Stop sends sig and returns the exit code (-1 when killed by a signal), failing the test if the
// agent takes longer than within.
func (a *Agent) Stop(sig syscall.Signal, within time.Duration) int {
	a.t.Helper()
	_ = a.cmd.Process.Signal(sig)
	return a.Wait(within)
}

// Wait waits for the agent to exit by itself and returns its exit code.
func (a *Agent) Wait(within time.Duration) int {
	a.t.Helper()
	select {
	case <-a.done:
	case <-time.After(within):
		a.t.Fatalf("agent did not exit within %v", within)
	}
	return a.cmd.ProcessState.ExitCode()
}

// Main is a TestMain for packages that run the agent: it builds the binary once into a temporary
// directory, stores its path in *bin, runs the tests and removes the directory.
func Main(m *testing.M, bin *string) {
	dir, err := os.MkdirTemp("", "floorlink-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	*bin, err = Build(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var plcsimBuild = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "plcsim-test-")
	if err != nil {
		return "", err
	}
	return BuildPlcsim(dir)
})

// StartPlcsim builds plcsim once per test binary, runs it with args until the test ends, and
// returns what it printed after "<kind> listening on " (kind "modbus-tcp", "modbus-rtu" or
// "opcua"): the address, pty path or endpoint URL.
func StartPlcsim(t testing.TB, kind string, args ...string) string {
	t.Helper()
	bin, err := plcsimBuild()
	if err != nil {
		t.Fatal(err)
	}
	p := StartArgs(t, bin, args)
	prefix := kind + " listening on "
	deadline := time.Now().Add(20 * time.Second)
	for {
		for _, line := range strings.Split(p.Log(), "\n") {
			if v, ok := strings.CutPrefix(line, prefix); ok {
				return strings.TrimSpace(v)
			}
		}
		select {
		case <-p.Done():
			t.Fatalf("plcsim %v exited before printing %q:\n%s", args, prefix, p.Log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("plcsim %v printed no %q within 20s:\n%s", args, prefix, p.Log())
		}
		<-time.After(20 * time.Millisecond)
	}
}
