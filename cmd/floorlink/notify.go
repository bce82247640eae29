package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"
)

// notifier speaks systemd's notify protocol (sd_notify(3)) for a Type=notify unit: one datagram
// per message to the unixgram socket named by $NOTIFY_SOCKET. A nil *notifier, outside systemd,
// sends nothing.
type notifier struct {
	addr *net.UnixAddr
	// watchdog is WatchdogSec as systemd passed it (WATCHDOG_USEC), 0 without a watchdog.
	watchdog time.Duration
}

// newNotifier reads $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID through getenv. It returns
// nil when there is no socket. A watchdog meant for another process (WATCHDOG_PID is not ours,
// e.g. inherited by a child) is ignored, as sd_watchdog_enabled(3) does.
func newNotifier(getenv func(string) string, pid int) (*notifier, error) {
	path := getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil, nil
	}
	if path[0] != '/' && path[0] != '@' {
		return nil, fmt.Errorf("NOTIFY_SOCKET %q: want an absolute path or an abstract socket (@name)", path)
	}
	// Go maps a leading @ to Linux's abstract namespace.
	n := &notifier{addr: &net.UnixAddr{Name: path, Net: "unixgram"}}
	if s := getenv("WATCHDOG_USEC"); s != "" {
		usec, err := strconv.ParseUint(s, 10, 63)
		if err != nil || usec == 0 {
			return nil, fmt.Errorf("WATCHDOG_USEC %q: want a positive number of microseconds", s)
		}
		if p := getenv("WATCHDOG_PID"); p == "" || p == strconv.Itoa(pid) {
			n.watchdog = time.Duration(usec) * time.Microsecond
		}
	}
	return n, nil
}

// send writes one notify message ("READY=1", "WATCHDOG=1", "STOPPING=1"). A new socket per
// message: they are rare, and nothing stays open for a socket systemd may replace.
func (n *notifier) send(state string) error {
	if n == nil {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("notify systemd at %s: %w", n.addr.Name, err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("notify systemd at %s: %w", n.addr.Name, err)
	}
	return nil
}

// runNotified runs run(ctx) and tells systemd about it: READY=1 as run starts (the agent's config
// is loaded and its buffer open by then), WATCHDOG=1 every half of the watchdog interval while
// alive answers nil, and STOPPING=1 as soon as ctx ends, so that systemd knows the shutdown
// (which delivers what is in flight) is under way. While the agent stops, the watchdog is fed
// without asking alive: the shutdown has its own limit (TimeoutStopSec). alive must not block.
// A failed notification is logged, never fatal: the agent's job does not depend on systemd.
func runNotified(ctx context.Context, n *notifier, log *slog.Logger, alive func() error, run func(context.Context) error) error {
	if n == nil {
		return run(ctx)
	}
	notify := func(state string) {
		if err := n.send(state); err != nil {
			log.Warn("systemd notification", "state", state, "err", err)
		}
	}
	// Before the watchdog's goroutine starts, so READY=1 is always the first message.
	notify("READY=1")
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		var tick <-chan time.Time
		if n.watchdog > 0 {
			t := time.NewTicker(n.watchdog / 2)
			defer t.Stop()
			tick = t.C
		}
		stopping := ctx.Done()
		for {
			select {
			case <-done:
				if stopping != nil && ctx.Err() != nil { // a stop so quick that done won the race
					notify("STOPPING=1")
				}
				return
			case <-stopping:
				notify("STOPPING=1")
				stopping = nil // sent once; keep feeding the watchdog while the agent drains
			case <-tick:
				if alive != nil && ctx.Err() == nil {
					if err := alive(); err != nil {
						log.Error("not feeding the systemd watchdog: the agent is stuck; systemd restarts it at WatchdogSec unless it recovers", "err", err)
						continue
					}
				}
				notify("WATCHDOG=1")
			}
		}
	}()
	err := run(ctx)
	close(done)
	<-stopped
	return err
}
