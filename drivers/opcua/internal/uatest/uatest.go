// Package uatest starts the independent OPC UA server of the tests (node-opcua, from
// scripts/opcua/server.js, installed into .deps/opcua by `make deps`) on a free loopback port.
// The server is a child process that tests kill, restart, stop (SIGSTOP) and resume.
package uatest

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Options configure a server. The zero value serves security None to anonymous clients.
type Options struct {
	// Secure offers only Basic256Sha256 SignAndEncrypt (else only None), or Policies × Modes
	// when given (e.g. "Aes256_Sha256_RsaPss"; "Sign", "SignAndEncrypt").
	Secure          bool
	Policies, Modes []string
	// Users accepted with username tokens; when empty, anonymous clients are accepted.
	Users map[string]string
	// UserCert is the path of an X.509 user certificate (DER or PEM) the server trusts for
	// certificate user tokens, offered on the secure endpoints; the server then refuses any
	// other user certificate (BadIdentityTokenRejected) and anonymous clients. Empty: any user
	// certificate is accepted (node-opcua's default user PKI).
	UserCert string
	// Omit names Types variables (e.g. "Int32") not to create.
	Omit []string
	// Gen is served as the String variable ns=1;s=Line1.Gen.
	Gen int
	// Extra adds Double variables ns=1;s=Line1.Extra.E<i>, all changing every second.
	Extra int
	// MaxNodesPerRead is the OperationLimits value advertised; zero means 1000.
	MaxNodesPerRead int
}

// Server is a running node-opcua process.
type Server struct {
	t        testing.TB
	root     string
	port     int
	pki      string
	Endpoint string

	mu    sync.Mutex
	cmd   *exec.Cmd
	stdin io.WriteCloser
	log   *os.File
	done  chan struct{}
}

// Root is the repository root (where .deps lives).
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "../../../.."))
}

// Start starts a server with opts on a free 127.0.0.1 port and returns once it accepts
// connections. It is killed in t.Cleanup; its log is printed when the test failed.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	root := Root()
	if _, err := os.Stat(filepath.Join(root, ".deps/opcua/node_modules/node-opcua/package.json")); err != nil {
		t.Fatalf("node-opcua is missing in .deps/opcua: run make deps (it installs scripts/opcua's lock with npm ci): %v", err)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node not found: run make deps (Node.js 20 or later): %v", err)
	}
	s := &Server{t: t, root: root, pki: filepath.Join(t.TempDir(), "server-pki")}
	var last error
	for range 5 {
		s.port = freePort(t)
		if last = s.start(opts); last == nil {
			t.Cleanup(func() { s.Kill(); s.printLog() })
			return s
		}
	}
	t.Fatalf("start node-opcua: %v", last)
	return nil
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("reserve a port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (s *Server) start(opts Options) error {
	arg, _ := json.Marshal(map[string]any{"port": s.port, "secure": opts.Secure, "users": opts.Users, "pki": s.pki,
		"omit": opts.Omit, "policies": opts.Policies, "modes": opts.Modes, "gen": opts.Gen, "extra": opts.Extra, "maxNodesPerRead": opts.MaxNodesPerRead,
		"userCert": opts.UserCert})
	log, err := os.CreateTemp(filepath.Dir(s.pki), "node-opcua-*.log")
	if err != nil {
		return err
	}
	cmd := exec.Command("node", filepath.Join(s.root, "scripts/opcua/server.js"), string(arg))
	cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(s.root, ".deps/opcua/node_modules"), "NODE_NO_WARNINGS=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start node: %w", err)
	}
	done := make(chan struct{})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(log, line)
			if ep, ok := strings.CutPrefix(line, "ENDPOINT "); ok {
				select {
				case ready <- ep:
				default:
				}
			}
		}
		_ = cmd.Wait()
		close(done)
	}()
	select {
	case ep := <-ready:
		s.mu.Lock()
		s.cmd, s.stdin, s.log, s.done, s.Endpoint = cmd, stdin, log, done, ep
		s.mu.Unlock()
		return nil
	case <-done:
		b, _ := os.ReadFile(log.Name())
		return fmt.Errorf("node-opcua exited before it was ready: %s", b)
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		return errors.New("node-opcua not ready within 60s")
	}
}

// Kill ends the server with SIGKILL and waits for it (also when it is stopped).
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Restart kills the server and starts it again on the same port with opts.
func (s *Server) Restart(opts Options) {
	s.t.Helper()
	s.Kill()
	var err error
	for range 20 { // the port may linger a moment after the kill
		if err = s.start(opts); err == nil {
			return
		}
		if !strings.Contains(err.Error(), "EADDRINUSE") {
			break
		}
	}
	s.t.Fatalf("restart node-opcua: %v", err)
}

// Stop freezes the server (SIGSTOP): its sockets stay open, nothing answers.
func (s *Server) Stop() { s.signal(syscall.SIGSTOP) }

// Cont resumes a stopped server (SIGCONT).
func (s *Server) Cont() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Errorf("signal node-opcua: %v", err)
	}
}

// Remove deletes the variable ns=1;s=Line1.Types.<name> (or Line1.<name>) at runtime.
func (s *Server) Remove(name string) { s.command(map[string]any{"op": "remove", "name": name}) }

// Set sets the Double variable ns=1;s=Line1.Static.
func (s *Server) Set(v float64) { s.command(map[string]any{"op": "set", "name": "Static", "value": v}) }

func (s *Server) command(c map[string]any) {
	b, _ := json.Marshal(c)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.stdin.Write(append(b, '\n')); err != nil {
		s.t.Errorf("command node-opcua: %v", err)
	}
}

// CertFile is the server's own certificate (PEM), created by node-opcua in its PKI directory.
func (s *Server) CertFile() string {
	matches, _ := filepath.Glob(filepath.Join(s.pki, "server", "own", "certs", "*.pem"))
	if len(matches) == 0 {
		return ""
	}
	return matches[0]
}

func (s *Server) printLog() {
	if !s.t.Failed() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.log != nil {
		b, _ := os.ReadFile(s.log.Name())
		if len(b) > 8000 {
			b = b[len(b)-8000:]
		}
		s.t.Logf("node-opcua log (%s):\n%s", s.log.Name(), b)
	}
}

// Var is a static variable the server serves, below ns=1;s=Line1.Types.
type Var struct {
	Name  string // browse name; node id ns=1;s=Line1.Types.<Name>
	Type  string // the Floorlink tag type it maps to
	Value string // drivers.Value.String() of the value it maps to
}

// Vars lists the static variables with the values scripts/opcua/server.js serves.
func Vars() []Var {
	return []Var{
		{"Boolean", "bool", "true"},
		{"SByte", "int8", "-100"},
		{"Byte", "uint8", "200"},
		{"Int16", "int16", "-12345"},
		{"UInt16", "uint16", "48879"},
		{"Int32", "int32", "-123456789"},
		{"UInt32", "uint32", "3456789012"},
		{"Int64", "int64", "-1234567890123456789"},
		{"UInt64", "uint64", "12345678901234567890"},
		{"Float", "float32", "3.5"},
		{"Double", "float64", "-2.25e+10"},
		{"String", "string", `"Press 1 ünïcode"`},
		{"DateTime", "datetime", `"2026-01-02T03:04:05.678Z"`},
		{"ByteString", "bytes", `"AAEC/v8="`},
		{"Enum", "int32", "3"},
		{"DoubleArray", "float64", `"[1.5,-2.5,3.25]"`},
		{"Int32Array", "int32", `"[7,-8,9]"`},
	}
}

// Namespace is the index of the server's own namespace, which holds the variables.
const Namespace = 1
