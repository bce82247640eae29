package main_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/ua"
)

var opcuaLine = regexp.MustCompile(`^opcua listening on (opc\.tcp://127\.0\.0\.1:\d+)$`)

// startOPCUA runs plcsim with args, which serve OPC UA only, and returns the process and the
// endpoint URL it printed. The process is killed at cleanup; its stderr printed if the test failed.
func startOPCUA(t *testing.T, args ...string) (*exec.Cmd, string, <-chan struct{}) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	lines := make(chan string, 1)
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
				t.Errorf("unexpected stdout line %q", sc.Text())
			}
		}
		cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGCONT)
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("plcsim stderr:\n%s", stderr.String())
		}
	})
	select {
	case l := <-lines:
		m := opcuaLine.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("stdout line %q, want %q", l, opcuaLine)
		}
		return cmd, m[1], done
	case <-time.After(10 * time.Second):
		t.Fatal("no opcua line within 10s")
	}
	return nil, "", nil
}

// waitStopped waits until every thread of process pid is stopped. kill(2) returns before a
// thread busy on another core has taken SIGSTOP, and such a thread can still answer a request.
func waitStopped(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		stats, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
		stopped := len(stats) > 0
		for _, p := range stats {
			b, err := os.ReadFile(p)
			// The state is the field after the command name, which is in parentheses.
			i := bytes.LastIndexByte(b, ')')
			if err != nil || i < 0 || i+2 >= len(b) || (b[i+2] != 'T' && b[i+2] != 't') {
				stopped = false
				break
			}
		}
		if stopped {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("plcsim (pid %d) not stopped 10s after SIGSTOP", pid)
		}
		<-time.After(time.Millisecond) // the polling interval of a wait with a deadline
	}
}

func readTick(ctx context.Context, c *opcua.Client) (uint32, error) {
	resp, err := c.Read(ctx, &ua.ReadRequest{NodesToRead: []*ua.ReadValueID{
		{NodeID: ua.NewStringNodeID(2, "Line1.M2.Tick"), AttributeID: ua.AttributeIDValue},
	}})
	if err != nil {
		return 0, err
	}
	if s := resp.Results[0].Status; s != ua.StatusOK {
		return 0, s
	}
	v, _ := resp.Results[0].Value.Value().(uint32)
	return v, nil
}

// TestPlcsim_OPCUA runs plcsim --opcua 127.0.0.1:0 as a subprocess: it prints its endpoint, serves
// the line (the tick moves), stays silent while stopped by SIGSTOP and serves again after SIGCONT,
// and a node left out by --opcua-remove is unknown.
func TestPlcsim_OPCUA(t *testing.T) {
	cmd, url, done := startOPCUA(t, "--opcua", "127.0.0.1:0", "--speed", "10", "--opcua-remove", "Line1.M1.Temperature")
	c, err := opcua.NewClient(url, opcua.SecurityMode(ua.MessageSecurityModeNone), opcua.AutoReconnect(false),
		opcua.RequestTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	defer c.Close(context.Background())

	first, err := readTick(ctx, c)
	if err != nil {
		t.Fatalf("read tick: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		tick, err := readTick(ctx, c)
		if err != nil {
			t.Fatalf("read tick: %v", err)
		}
		if tick > first {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tick stayed %d for 10s", tick)
		}
		<-time.After(20 * time.Millisecond) // the polling interval of a wait with a deadline
	}
	resp, err := c.Read(ctx, &ua.ReadRequest{NodesToRead: []*ua.ReadValueID{
		{NodeID: ua.NewStringNodeID(2, "Line1.M1.Temperature"), AttributeID: ua.AttributeIDValue},
	}})
	if err != nil || resp.Results[0].Status != ua.StatusBadNodeIDUnknown {
		t.Errorf("read removed node: got %v %v, want BadNodeIdUnknown", resp, err)
	}

	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitStopped(t, cmd.Process.Pid)
	if _, err := readTick(ctx, c); err == nil {
		t.Error("read from a stopped plcsim succeeded")
	}
	if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	// The timed-out request's answer may still arrive; a new client sees the server again.
	c2, err := opcua.NewClient(url, opcua.SecurityMode(ua.MessageSecurityModeNone), opcua.AutoReconnect(false))
	if err != nil {
		t.Fatal(err)
	}
	if err := c2.Connect(ctx); err != nil {
		t.Fatalf("connect after SIGCONT: %v", err)
	}
	defer c2.Close(context.Background())
	if _, err := readTick(ctx, c2); err != nil {
		t.Errorf("read after SIGCONT: %v", err)
	}

	c.Close(context.Background())
	c2.Close(context.Background())
	begin := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
		if code := cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("exit code %d after SIGTERM, want 0", code)
		}
		t.Logf("stopped %v after SIGTERM", time.Since(begin).Round(time.Millisecond))
	case <-time.After(15 * time.Second):
		t.Fatal("plcsim still running 15s after SIGTERM")
	}
}
