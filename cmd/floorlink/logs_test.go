package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRun_UnreachableDeviceLogsLittle: a device that fails every cycle for 60 cycles produces at
// most 3 log lines (issue 9): one per state change, never one per poll.
func TestRun_UnreachableDeviceLogsLittle(t *testing.T) {
	// A port that refuses: listen, note it, close.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "gw.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`gateway: {id: gw-log, site: s, area: a, line: l}
mqtt:
  brokers: [tcp://127.0.0.1:1]
  reconnect_min: 1s
http: {listen: ""}
devices:
  - name: press-9
    protocol: modbus-tcp
    address: %q
    poll_interval: 50ms
    timeout: 100ms
    tags: [{name: state, address: "40001", type: uint16}]
`, dead)), 0o644)
	logPath := filepath.Join(dir, "agent.log")
	logFile, _ := os.Create(logPath)
	defer logFile.Close()
	cmd := exec.Command(binary, "run", "-c", cfg)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	<-time.After(60 * 50 * time.Millisecond) // 60 poll cycles: the duration is the test's input
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	b, _ := os.ReadFile(logPath)
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "press-9") {
			lines = append(lines, l)
		}
	}
	if len(lines) > 3 {
		t.Errorf("%d log lines about the device in %v (60 cycles), want at most 3:\n%s", len(lines), time.Since(start).Round(time.Millisecond), strings.Join(lines, "\n"))
	}
	t.Logf("%d log lines about the unreachable device in 60 cycles", len(lines))
}
