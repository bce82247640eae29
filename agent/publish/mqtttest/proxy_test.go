package mqtttest

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"
)

// TestProxy forwards, stalls without closing, resumes, refuses and cuts, against a loopback
// echo server.
func TestProxy(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	p := StartProxy(t, ln.Addr().String())
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	echo := func(msg string, within time.Duration) error {
		c.SetDeadline(time.Now().Add(within))
		if _, err := c.Write([]byte(msg + "\n")); err != nil {
			return err
		}
		line, err := r.ReadString('\n')
		if err == nil && line != msg+"\n" {
			t.Fatalf("echo %q, got %q", msg, line)
		}
		return err
	}
	if err := echo("one", 5*time.Second); err != nil {
		t.Fatalf("forwarding: %v", err)
	}
	p.SetStall(true)
	if err := echo("two", 300*time.Millisecond); err == nil {
		t.Fatal("a stalled proxy forwarded")
	} else if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("a stalled proxy closed the connection: %v", err)
	}
	p.SetStall(false)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if line, err := r.ReadString('\n'); err != nil || line != "two\n" {
		t.Fatalf("after the stall: %q, %v", line, err)
	}
	p.Cut()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.ReadString('\n'); err == nil {
		t.Fatal("a cut connection still reads")
	}
	p.SetRefuse(true)
	c2, err := net.Dial("tcp", p.Addr())
	if err == nil {
		c2.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c2.Read(make([]byte, 1)); err == nil {
			t.Fatal("a refusing proxy kept a new connection open")
		}
		c2.Close()
	}
}
