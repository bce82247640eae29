package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/floorlink/floorlink/agent/statuspage"
)

// The status API's rate: a status page refreshes once a second, so 50 requests a second serve
// dozens of open pages; beyond that a client loop would take CPU from polling on a small gateway.
const (
	statusRate  = 50
	statusBurst = 20
)

// rateLimit is a token bucket shared by all callers of an endpoint.
type rateLimit struct {
	mu                  sync.Mutex
	rate, burst, tokens float64
	last                time.Time
}

func newRateLimit(rate, burst float64) *rateLimit {
	return &rateLimit{rate: rate, burst: burst, tokens: burst}
}

func (l *rateLimit) allow(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() {
		l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	}
	l.last = now
	if l.tokens < 1 {
		return false
	}
	l.tokens--
	return true
}

// serveHTTP runs the agent's HTTP listener (http.listen) until ctx ends: health, readiness, the
// gateway status as JSON and the status page that shows it, and a hot backup of the buffer. A
// listener that cannot open is logged and skipped: the gateway's job is its data, which must not
// stop for a taken status port.
func (a *Agent) serveHTTP(ctx context.Context, ready func() error) (wait func()) {
	addr := a.cfg.HTTP.Listen
	if addr == "" {
		return func() {}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		a.log.Error("http listener not started", "listen", addr, "err", err)
		return func() {}
	}
	a.httpAddr.Store(ln.Addr().String())
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if ctx.Err() != nil {
			fmt.Fprintln(w, "ok: stopping") // Run's loop is gone; the shutdown has its own limits
			return
		}
		if err := a.Alive(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := ready(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.metrics.reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelWarn)}))
	limit := newRateLimit(statusRate, statusBurst)
	mux.HandleFunc("GET /api/v1/status", func(w http.ResponseWriter, r *http.Request) {
		// The poll loops come first: past the rate a status page needs, callers wait.
		if !limit.allow(time.Now()) {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "too many status requests: the gateway's polling comes first", http.StatusTooManyRequests)
			return
		}
		doc, zipped := a.statusJSON()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Vary", "Accept-Encoding")
		if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			w.Header().Set("Content-Encoding", "gzip")
			w.Write(zipped)
			return
		}
		w.Write(doc)
	})
	mux.HandleFunc("GET /api/v1/buffer/backup", func(w http.ResponseWriter, r *http.Request) {
		// A consistent copy from one read transaction: while it runs, the writer may have to
		// wait to grow the file (buffer.WriteTo), so a backup is an operator's act, not a poll.
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", `attachment; filename="`+BufferFile+`"`)
		n, err := a.buf.WriteTo(w)
		if err != nil {
			a.log.Error("buffer backup", "bytes", n, "err", err)
			return
		}
		a.log.Info("buffer backup sent", "bytes", n, "remote", r.RemoteAddr)
	})
	// The status page, at "/": the patterns above are more specific and keep their paths.
	mux.Handle("GET /", statuspage.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second,
		ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelWarn)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("http listener", "err", err)
		}
	}()
	a.log.Info("http listening", "addr", ln.Addr().String())
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-done
	}
}
