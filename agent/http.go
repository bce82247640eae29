package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/floorlink/floorlink/agent/statuspage"
)

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
	mux.HandleFunc("GET /api/v1/status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(a.statusJSON())
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
