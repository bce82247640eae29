package watch

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// ANSI sequences of the terminal frame.
const (
	ansiHomeClear = "\x1b[H\x1b[2J"
	ansiBold      = "\x1b[1m"
	ansiDim       = "\x1b[2m"
	ansiRed       = "\x1b[31m"
	ansiGreen     = "\x1b[32m"
	ansiYellow    = "\x1b[33m"
	ansiReset     = "\x1b[0m"
)

// DefaultWidth is the frame's width when the terminal's is not known.
const DefaultWidth = 100

// AppendFrame appends one terminal frame as of now: home, clear, then the whole view, so that
// written at once it replaces the previous frame without flicker. No line is wider than width
// columns (zero means DefaultWidth); with height above zero the frame has at most height
// lines, the last one saying how many were left out.
func (m *Model) AppendFrame(dst []byte, now time.Time, width, height int) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	if width <= 0 {
		width = DefaultWidth
	}
	f := &frame{width: width, color: m.opts.Color}
	f.put(ansiBold, m.title)
	if m.broker != "" {
		f.put("", "   "+m.broker+" ")
		switch m.conn {
		case "connected":
			f.put(ansiGreen, m.conn)
		case "":
		default:
			f.put(ansiYellow, m.conn)
		}
	}
	f.put("", fmt.Sprintf("   up %s   %d messages   Ctrl-C stops", now.Sub(m.startOr(now)).Truncate(time.Second), m.messages))
	f.nl()
	if m.connErr != "" {
		f.put(ansiRed, m.connErr)
		f.nl()
	}
	for _, h := range m.opts.Header {
		f.put(ansiDim, h)
		f.nl()
	}
	if len(m.sites) == 0 {
		f.nl()
		f.put(ansiDim, "waiting for a Floorlink message")
		f.nl()
	}
	for _, s := range m.sortedSites() {
		f.nl()
		f.put("", "site ")
		f.put(ansiBold, dash(s.name))
		f.nl()
		for _, g := range s.sortedGateways() {
			m.frameGateway(f, g, now)
		}
		for _, l := range s.sortedLines() {
			f.put("", "  line ")
			f.put(ansiBold, l.key.area+"/"+l.key.line)
			f.nl()
			for _, src := range l.sortedSources() {
				frameSource(f, src, now)
			}
		}
	}
	if m.undecodable > 0 {
		f.nl()
		f.put(ansiRed, fmt.Sprintf("%d messages did not decode; the last: %s", m.undecodable, m.lastErr))
		f.nl()
	}
	if height > 0 {
		f.clip(height)
	}
	return append(append(dst, ansiHomeClear...), f.dst...)
}

func (m *Model) frameGateway(f *frame, g *gatewayRow, now time.Time) {
	f.put("", "  gateway ")
	f.put(ansiBold, g.id)
	f.put("", "   ")
	switch {
	case g.status == nil:
		f.put(ansiDim, "no status yet")
	case g.status.State == "online":
		f.put(ansiGreen, "online")
	default:
		f.put(ansiRed, g.status.State)
	}
	if g.status != nil {
		f.put("", fmt.Sprintf(", session %d", g.status.Session))
	}
	if g.stats != nil {
		f.put(ansiDim, "   stats "+age(now.Sub(g.statsAt))+" ago")
	}
	f.nl()
	if st := g.stats; st != nil {
		f.put("", "      buffer "+plural(st.Depth, "record"))
		if st.Depth > 0 {
			f.put("", ", oldest "+age(st.OldestAge))
		}
		f.put("", ", "+formatBytes(st.FileBytes))
		if st.Dropped > 0 {
			f.put(ansiRed, fmt.Sprintf(", %d dropped", st.Dropped))
		}
		f.put("", fmt.Sprintf("   publish %d sent, %d acked, %.1f msg/s", st.Published, st.Acked, st.Rate))
		if st.DeadLetter > 0 {
			f.put(ansiRed, fmt.Sprintf(", %d dead letters", st.DeadLetter))
		}
		f.nl()
	}
	if g.event != nil {
		frameEvent(f, g.event, now)
	}
}

func frameSource(f *frame, src *sourceRow, now time.Time) {
	f.put("", "    ")
	f.put(ansiBold, src.name)
	if src.asset {
		f.put("", " (kpi)")
	}
	if !src.seen {
		f.put(ansiDim, "   waiting")
		f.nl()
	} else {
		f.put(ansiDim, fmt.Sprintf("   seq %d   %s ago", src.seq, age(now.Sub(src.ts))))
		if src.historical {
			f.put(ansiYellow, "   replayed")
		}
		f.nl()
	}
	if src.event != nil {
		frameEvent(f, src.event, now)
	}
	values := src.sortedValues()
	if len(values) == 0 {
		return
	}
	// The values in aligned cells, row by row, as many per row as the width takes.
	const indent, gap = 6, 2
	cells := make([]string, len(values))
	cellWidth := 0
	for i, v := range values {
		text := v.Text
		if v.Null {
			text = "-"
		}
		cells[i] = v.Name + "=" + text
		if v.Quality != "" {
			cells[i] += " (" + v.Quality + ")"
		}
		cellWidth = max(cellWidth, utf8.RuneCountInString(cells[i]))
	}
	cellWidth = min(cellWidth, f.width-indent)
	perRow := max(1, (f.width-indent+gap)/(cellWidth+gap))
	for i, c := range cells {
		if i%perRow == 0 {
			if i > 0 {
				f.nl()
			}
			f.put("", strings.Repeat(" ", indent))
		} else {
			f.put("", strings.Repeat(" ", gap))
		}
		style := ""
		if q := values[i].Quality; strings.HasPrefix(q, "bad") {
			style = ansiRed
		} else if q != "" {
			style = ansiYellow
		}
		f.put(style, c)
		if pad := cellWidth - utf8.RuneCountInString(c); pad > 0 && i%perRow != perRow-1 && i != len(cells)-1 {
			f.put("", strings.Repeat(" ", pad))
		}
	}
	f.nl()
}

func frameEvent(f *frame, e *event, now time.Time) {
	style := ansiDim
	switch e.name {
	case "disconnected", "fault", "drop", "buffer_moved_aside":
		style = ansiRed
	}
	f.put(style, fmt.Sprintf("      last event %s %s ago", dash(e.name), age(now.Sub(e.ts))))
	if e.err != "" {
		f.put(style, ": "+e.err)
	}
	f.nl()
}

// frame builds the lines of a terminal frame, cutting each at width columns (runes; the
// escape codes take none).
type frame struct {
	dst   []byte
	width int
	col   int
	cut   bool // the current line reached the width
	color bool
}

func (f *frame) put(style, s string) {
	if f.cut || s == "" {
		return
	}
	n := utf8.RuneCountInString(s)
	if f.col+n > f.width {
		keep := f.width - f.col - 1
		if keep < 0 { // the line is full: no room even for the ellipsis
			f.cut = true
			return
		}
		i := 0
		for k := 0; k < keep; k++ {
			_, size := utf8.DecodeRuneInString(s[i:])
			i += size
		}
		s, n, f.cut = s[:i]+"…", keep+1, true
	}
	if f.color && style != "" {
		f.dst = append(append(append(f.dst, style...), s...), ansiReset...)
	} else {
		f.dst = append(f.dst, s...)
	}
	f.col += n
}

func (f *frame) nl() {
	f.dst = append(f.dst, '\n')
	f.col, f.cut = 0, false
}

// clip keeps the first height-1 lines and a last line counting the rest.
func (f *frame) clip(height int) {
	lines := bytes.Count(f.dst, []byte{'\n'})
	if lines <= height {
		return
	}
	keep := height - 1
	end := 0
	for range keep {
		end += bytes.IndexByte(f.dst[end:], '\n') + 1
	}
	f.dst, f.col, f.cut = f.dst[:end], 0, false
	f.put(ansiDim, fmt.Sprintf("… %d more lines: enlarge the terminal, or pipe the output for plain lines", lines-keep))
	f.nl()
}

// age is d for a person: tenths of a second while short, whole seconds after.
func age(d time.Duration) string {
	d = max(d, 0)
	if d < 10*time.Second {
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
	}
	return d.Round(time.Second).String()
}

func plural(n uint64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.FormatUint(n, 10) + " " + noun + "s"
}

func formatBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}
