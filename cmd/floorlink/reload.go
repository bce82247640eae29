package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/floorlink/floorlink/agent"
	"github.com/floorlink/floorlink/agent/config"
)

// reloader re-reads the configuration on SIGHUP and, with --watch-config, when the file
// changes, and hands what loads cleanly to the running agent. A file with problems is refused
// with each problem logged at its file:line:col; the agent runs on with what it has.
type reloader struct {
	agent     *agent.Agent
	path      string
	overrides func(*config.File) // the run flags, which win over the file again
	watch     time.Duration      // how often to look at the file; 0: only on SIGHUP
	log       *slog.Logger
}

func (r *reloader) run(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var tick <-chan time.Time
	if r.watch > 0 {
		t := time.NewTicker(r.watch)
		defer t.Stop()
		tick = t.C
	}
	last := fileSum(r.path)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			r.log.Info("SIGHUP: reloading the configuration", "file", r.path)
		case <-tick:
			sum := fileSum(r.path)
			if sum == nil || bytes.Equal(sum, last) {
				continue
			}
			r.log.Info("configuration file changed: reloading", "file", r.path)
		}
		last = fileSum(r.path)
		r.reload(ctx)
	}
}

func (r *reloader) reload(ctx context.Context) {
	cfg, err := loadLean(r.path)
	if err == nil {
		r.overrides(cfg)
		err = r.agent.Reload(ctx, cfg)
	}
	var ce *config.Error
	switch {
	case err == nil:
	case errors.As(err, &ce):
		for _, p := range ce.Problems {
			r.log.Error("reload refused: "+p.String(), "file", r.path)
		}
		r.log.Error("reload refused: running on with the configuration loaded before", "file", r.path, "problems", len(ce.Problems))
	case ctx.Err() == nil:
		r.log.Error("reload refused: running on with the configuration loaded before", "file", r.path, "err", err)
	}
}

// fileSum is the hash of the file, nil when it cannot be read (an editor between writes).
func fileSum(path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	s := sha256.Sum256(b)
	return s[:]
}
