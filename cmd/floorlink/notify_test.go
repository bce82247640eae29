package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// notifySocket is a systemd stand-in: a unixgram socket in a temporary directory that collects
// notify messages.
type notifySocket struct {
	path string
	conn *net.UnixConn
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &notifySocket{path: path, conn: c}
}

// next returns the next message, failing the test if none comes within d.
func (s *notifySocket) next(t *testing.T, d time.Duration) string {
	t.Helper()
	buf := make([]byte, 4096)
	if err := s.conn.SetReadDeadline(time.Now().Add(d)); err != nil {
		t.Fatal(err)
	}
	n, err := s.conn.Read(buf)
	if err != nil {
		t.Fatalf("no notify message within %v: %v", d, err)
	}
	return string(buf[:n])
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// TestRunNotified_ReadyWatchdogStopping: READY=1 first, WATCHDOG=1 at half the interval while
// the agent runs, STOPPING=1 once its context ends, and the watchdog goes on through the
// shutdown until run returns.
func TestRunNotified_ReadyWatchdogStopping(t *testing.T) {
	sock := listenNotify(t)
	n, err := newNotifier(env(map[string]string{"NOTIFY_SOCKET": sock.path, "WATCHDOG_USEC": "200000",
		"WATCHDOG_PID": strconv.Itoa(os.Getpid())}), os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if n.watchdog != 200*time.Millisecond {
		t.Fatalf("watchdog %v, want 200ms", n.watchdog)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	release := make(chan struct{})
	runErr := errors.New("the agent's error")
	done := make(chan error, 1)
	go func() {
		done <- runNotified(ctx, n, slog.New(slog.DiscardHandler), nil, func(ctx context.Context) error {
			<-ctx.Done()
			<-release // the shutdown drains for a while
			return runErr
		})
	}()

	if got := sock.next(t, 5*time.Second); got != "READY=1" {
		t.Fatalf("first message %q, want READY=1", got)
	}
	start := time.Now()
	for range 3 {
		if got := sock.next(t, 5*time.Second); got != "WATCHDOG=1" {
			t.Fatalf("got %q, want WATCHDOG=1", got)
		}
	}
	// Three pings at 100 ms: at least 300 ms (timer slack only delays them).
	if el := time.Since(start); el < 250*time.Millisecond {
		t.Errorf("3 watchdog pings in %v, want them 100ms apart", el)
	}
	cancel()
	for got := sock.next(t, 5*time.Second); got != "STOPPING=1"; got = sock.next(t, 5*time.Second) {
		if got != "WATCHDOG=1" {
			t.Fatalf("got %q, want STOPPING=1", got)
		}
	}
	if got := sock.next(t, 5*time.Second); got != "WATCHDOG=1" {
		t.Fatalf("after STOPPING=1 got %q, want the watchdog to go on while the agent drains", got)
	}
	close(release)
	select {
	case err := <-done:
		if err != runErr {
			t.Fatalf("runNotified returned %v, want run's error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("runNotified did not return after run did")
	}
}

// drain reads what was sent up to now. A datagram socket delivers at send, so what was sent
// before the call is queued; a short positive deadline reads it (a deadline of now would not
// read at all).
func (s *notifySocket) drain(t *testing.T) {
	t.Helper()
	buf := make([]byte, 4096)
	for {
		if err := s.conn.SetReadDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.conn.Read(buf); err != nil {
			return
		}
	}
}

// quiet fails the test if a message arrives within d.
func (s *notifySocket) quiet(t *testing.T, d time.Duration, why string) {
	t.Helper()
	buf := make([]byte, 4096)
	if err := s.conn.SetReadDeadline(time.Now().Add(d)); err != nil {
		t.Fatal(err)
	}
	if n, err := s.conn.Read(buf); err == nil {
		t.Fatalf("got %q within %v; want nothing: %s", buf[:n], d, why)
	}
}

// TestRunNotified_Alive: the watchdog is fed only while the agent says it is alive. An agent
// that is stuck gets no WATCHDOG=1 and the reason is logged; pings resume once it recovers, and
// the shutdown is fed without asking.
func TestRunNotified_Alive(t *testing.T) {
	sock := listenNotify(t)
	n, err := newNotifier(env(map[string]string{"NOTIFY_SOCKET": sock.path, "WATCHDOG_USEC": "200000"}), os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		stuck error
		asked int
	)
	alive := func() error {
		mu.Lock()
		defer mu.Unlock()
		asked++
		return stuck
	}
	setStuck := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		stuck = err
	}
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	release := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- runNotified(ctx, n, log, alive, func(ctx context.Context) error {
			<-ctx.Done()
			<-release
			return nil
		})
	}()
	if got := sock.next(t, 5*time.Second); got != "READY=1" {
		t.Fatalf("first message %q, want READY=1", got)
	}
	for range 2 {
		if got := sock.next(t, 5*time.Second); got != "WATCHDOG=1" {
			t.Fatalf("got %q, want WATCHDOG=1 while the agent is alive", got)
		}
	}

	setStuck(errors.New("the buffer's writer has been in one commit for 31s"))
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "the buffer's writer has been in one commit for 31s") {
		if time.Now().After(deadline) {
			t.Fatalf("no log line naming the stuck part within 5s; logs:\n%s", logs.String())
		}
		<-time.After(10 * time.Millisecond) // the polling interval of a wait with a deadline
	}
	// Pings sent before the agent got stuck are queued; none may come after.
	sock.drain(t)
	sock.quiet(t, 600*time.Millisecond, "the agent is stuck")

	setStuck(nil)
	if got := sock.next(t, 5*time.Second); got != "WATCHDOG=1" {
		t.Fatalf("got %q, want WATCHDOG=1 once the agent recovers", got)
	}

	setStuck(errors.New("stuck while stopping"))
	cancel()
	for got := sock.next(t, 5*time.Second); got != "STOPPING=1"; got = sock.next(t, 5*time.Second) {
		if got != "WATCHDOG=1" {
			t.Fatalf("got %q, want STOPPING=1", got)
		}
	}
	mu.Lock()
	before := asked
	mu.Unlock()
	for range 2 {
		if got := sock.next(t, 5*time.Second); got != "WATCHDOG=1" {
			t.Fatalf("got %q, want WATCHDOG=1 while the agent stops", got)
		}
	}
	mu.Lock()
	if asked != before {
		t.Errorf("alive asked %d times during the shutdown, want none", asked-before)
	}
	mu.Unlock()
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestRunNotified_NoWatchdog: without WATCHDOG_USEC, or with one meant for another process,
// only READY=1 and STOPPING=1 are sent.
func TestRunNotified_NoWatchdog(t *testing.T) {
	for name, vars := range map[string]map[string]string{
		"unset":         {},
		"other process": {"WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"},
	} {
		t.Run(name, func(t *testing.T) {
			sock := listenNotify(t)
			vars["NOTIFY_SOCKET"] = sock.path
			n, err := newNotifier(env(vars), os.Getpid())
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			err = runNotified(ctx, n, slog.New(slog.DiscardHandler), nil, func(ctx context.Context) error {
				if got := sock.next(t, 5*time.Second); got != "READY=1" {
					t.Errorf("got %q, want READY=1", got)
				}
				cancel()
				if got := sock.next(t, 5*time.Second); got != "STOPPING=1" {
					t.Errorf("got %q, want STOPPING=1 (a 1 ms watchdog of pid 1 must be ignored)", got)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestNewNotifier_Outside: outside systemd nothing is sent and run runs as it would.
func TestNewNotifier_Outside(t *testing.T) {
	n, err := newNotifier(env(nil), os.Getpid())
	if err != nil || n != nil {
		t.Fatalf("got %v, %v; want no notifier", n, err)
	}
	ran := false
	if err := runNotified(context.Background(), n, nil, nil, func(context.Context) error { ran = true; return nil }); err != nil || !ran {
		t.Fatalf("run ran %v, err %v", ran, err)
	}
}

func TestNewNotifier_Bad(t *testing.T) {
	for _, vars := range []map[string]string{
		{"NOTIFY_SOCKET": "relative.sock"},
		{"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "soon"},
		{"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "0"},
	} {
		if _, err := newNotifier(env(vars), 1); err == nil {
			t.Errorf("%v: want an error", vars)
		}
	}
}

// TestRun_NotifiesSystemd runs the built binary as systemd would start it (NOTIFY_SOCKET,
// WATCHDOG_USEC, WATCHDOG_PID set): READY=1 once it runs, WATCHDOG=1, STOPPING=1 on SIGTERM,
// then exit 0.
func TestRun_NotifiesSystemd(t *testing.T) {
	sock := listenNotify(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "floorlink.yaml")
	// No devices, a broker that is not there: the agent runs and buffers.
	if err := os.WriteFile(cfg, []byte(`gateway: {id: gw-notify, site: s, area: a, line: l, data_dir: data}
mqtt: {brokers: ["tcp://127.0.0.1:1"], shutdown_grace: 1s}
http: {listen: ""}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "run", "-c", cfg)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock.path, "WATCHDOG_USEC=400000")
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if t.Failed() {
			_ = cmd.Process.Kill()
			t.Logf("agent output:\n%s", out.String())
		}
	}()
	// WATCHDOG_PID is not set: a watchdog without it is the receiver's own (sd_watchdog_enabled).
	if got := sock.next(t, 20*time.Second); got != "READY=1" {
		t.Fatalf("first message %q, want READY=1", got)
	}
	if got := sock.next(t, 10*time.Second); got != "WATCHDOG=1" {
		t.Fatalf("got %q, want WATCHDOG=1", got)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for got := sock.next(t, 10*time.Second); got != "STOPPING=1"; got = sock.next(t, 10*time.Second) {
		if got != "WATCHDOG=1" {
			t.Fatalf("got %q, want STOPPING=1", got)
		}
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("agent exit: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("agent did not exit within 20s of SIGTERM")
	}
}
