// Package mqtttest starts the real MQTT parts publish's tests and the end-to-end tests need: a
// Mosquitto broker on a free loopback port, a recording subscriber, a TCP proxy that can
// refuse and cut connections to simulate a network outage between the agent and the broker, and
// an in-process spy broker (mochi-mqtt) that records the packets its clients send, for
// conformance tests.
//
// Mosquitto comes from Debian's package (`make deps` installs it). A test that needs it and does
// not find it fails with a message naming the command that installs it; it never skips.
package mqtttest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BrokerOptions tune the broker; the zero value is a broker without persistence.
type BrokerOptions struct {
	// Persistence keeps messages and sessions in a file in a temporary directory, so a broker
	// stopped with Stop and started again with Restart still holds them.
	Persistence bool
	// Config is appended to the generated mosquitto.conf.
	Config string
	// TLS, when set, makes the listener TLS with these files; the broker then requires a
	// client certificate signed by TLS.CA.
	TLS *TLSFiles
}

// Broker is a running Mosquitto process owned by a test.
type Broker struct {
	t    testing.TB
	opts BrokerOptions
	dir  string
	port int

	log lockedWriter // what every mosquitto process of this broker printed

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has been reaped
}

// MosquittoPath returns the path of the mosquitto binary, which Debian installs in /usr/sbin
// (often not on a non-root PATH).
func MosquittoPath() (string, error) {
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("mosquitto not found: run `make deps` (installs Debian's mosquitto)")
}

// StartBroker starts Mosquitto on a free port of 127.0.0.1 and stops it in t.Cleanup. It
// returns once the broker accepts connections.
func StartBroker(t testing.TB, opts BrokerOptions) *Broker {
	t.Helper()
	b := &Broker{t: t, opts: opts, dir: t.TempDir()}
	t.Cleanup(b.Stop)
	// Mosquitto needs a port number: reserve one, release it, start, and retry if another
	// process took it in between.
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("reserve a port for mosquitto: %v", err)
		}
		b.port = port
		if lastErr = b.start(); lastErr == nil {
			return b
		}
	}
	t.Fatalf("start mosquitto: %v", lastErr)
	return nil
}

// Addr is host:port of the broker's listener.
func (b *Broker) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port)) }

// URL is the broker's address as paho and Floorlink configs write it: ssl:// for a TLS broker.
func (b *Broker) URL() string {
	if b.opts.TLS != nil {
		return "ssl://" + b.Addr()
	}
	return "tcp://" + b.Addr()
}

func (b *Broker) start() error {
	bin, err := MosquittoPath()
	if err != nil {
		return err
	}
	conf := fmt.Sprintf("listener %d 127.0.0.1\n", b.port)
	if b.opts.TLS != nil {
		conf += fmt.Sprintf("cafile %s\ncertfile %s\nkeyfile %s\nrequire_certificate true\n",
			b.opts.TLS.CA, b.opts.TLS.ServerCert, b.opts.TLS.ServerKey)
	}
	conf += fmt.Sprint("allow_anonymous true\n" +
		// 0 lifts the default limit of 1000 queued QoS 1 messages per client: tests count every
		// replayed message and must not see the broker's own drops.
		"max_queued_messages 0\nmax_inflight_messages 0\nset_tcp_nodelay true\n")
	if b.opts.Persistence {
		conf += fmt.Sprintf("persistence true\npersistence_location %s/\nautosave_interval 0\n", b.dir)
	} else {
		conf += "persistence false\n"
	}
	if os.Geteuid() == 0 {
		// As root mosquitto drops to user "mosquitto", which cannot write the test's directory.
		conf += "user root\n"
	}
	conf += b.opts.Config + "\n"
	path := filepath.Join(b.dir, "mosquitto.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return err
	}
	cmd := exec.Command(bin, "-c", path)
	cmd.Stdout, cmd.Stderr = &b.log, &b.log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		// A TCP connect is enough to know it listens, TLS or not.
		c, err := net.DialTimeout("tcp", b.Addr(), time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case err := <-exited:
			return fmt.Errorf("mosquitto exited before accepting (%v): %s", err, b.Log())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("mosquitto did not accept on %s within 10s: %s", b.Addr(), b.Log())
		}
	}
	done := make(chan struct{})
	b.mu.Lock()
	b.cmd, b.done = cmd, done
	b.mu.Unlock()
	// Reap the process whenever it ends; Stop waits for this.
	go func() {
		<-exited
		close(done)
	}()
	return nil
}

// Stop ends the broker with SIGTERM (so a persistent broker saves its state) and waits for it.
// It is safe to call twice.
func (b *Broker) Stop() {
	b.mu.Lock()
	cmd, done := b.cmd, b.done
	b.cmd = nil
	b.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Restart starts the broker again on the same port after Stop.
func (b *Broker) Restart() {
	b.t.Helper()
	var err error
	for attempt := 0; attempt < 50; attempt++ {
		if err = b.start(); err == nil {
			return
		}
		<-time.After(100 * time.Millisecond) // the port may linger briefly after the old process
	}
	b.t.Fatalf("restart mosquitto on %s: %v", b.Addr(), err)
}

// Log returns what mosquitto printed so far, for failure messages.
func (b *Broker) Log() string {
	b.log.mu.Lock()
	defer b.log.mu.Unlock()
	return b.log.w.String()
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

type lockedWriter struct {
	mu sync.Mutex
	w  bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
