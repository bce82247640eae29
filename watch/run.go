package watch

import (
	"context"
	"fmt"
	"io"
	"time"
)

// RunOptions configure Run. The zero value draws plain lines once a second.
type RunOptions struct {
	// Terminal draws frames that replace each other instead of appending plain lines.
	Terminal bool
	// Size returns the terminal's width and height before each frame; nil means
	// DefaultWidth and no height limit.
	Size func() (width, height int)
	// Interval is the time between refreshes; zero means one second.
	Interval time.Duration
}

// Run draws the model on w every interval until ctx ends, then returns nil; it returns an
// error only when w fails. A terminal gets its first frame at once (a blank screen for a
// second looks broken); plain lines start after the first interval, so that refresh n is at
// t=n intervals. When Options.Start was zero, t=0 is when Run began.
func (m *Model) Run(ctx context.Context, w io.Writer, o RunOptions) error {
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	m.mu.Lock()
	if m.start.IsZero() {
		m.start = time.Now()
	}
	m.mu.Unlock()
	var buf []byte
	draw := func(now time.Time) error {
		if o.Terminal {
			width, height := DefaultWidth, 0
			if o.Size != nil {
				width, height = o.Size()
			}
			buf = m.AppendFrame(buf[:0], now, width, height)
		} else {
			buf = m.AppendPlain(buf[:0], now)
		}
		if _, err := w.Write(buf); err != nil {
			return fmt.Errorf("write the view: %w", err)
		}
		return nil
	}
	if o.Terminal {
		if err := draw(time.Now()); err != nil {
			return err
		}
	}
	tk := time.NewTicker(o.Interval)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-tk.C:
			if err := draw(now); err != nil {
				return err
			}
		}
	}
}
