package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// The live view shows what reached the broker, decoded from the agent's messages (docs/mqtt.md),
// not what plcsim holds: the demo's point is the path through the agent.
//
// Plain mode (stdout is not a terminal) prints, at every refresh, one line per machine in config
// order, then one for the gateway:
//
//	t=3s machine=m1 tick=24 state=running parts=1 good=1 reject=0 temperature=55.070293 pressure=5.981583 spindle=1376 age=0.5s
//	t=3s gateway=gw-demo status=online session=1 depth=0 file_bytes=32768 published=18 acked=18 rate=7.2 stats_age=0.6s
//
// Keys never change order and every key is always there; a value not known yet, or published as
// null (a bad sample), is "-". state is the state's name (its number if it has none). Counters
// and tick are the published integers; temperature and pressure are the published float32 in
// its shortest form, so they compare exactly with the register's value. The gateway's figures
// come from its stats message (rate: acknowledged messages per second), status and session from
// its retained status. t is the time since the view started, in whole seconds; age is the time
// since the machine's last telemetry was taken (its ts), stats_age since the last stats arrived.
// A value holding a space, '=' or '"' is quoted as a Go string.

// The tags a machine row shows, as configs/demo.yaml names them: a config that names them
// otherwise shows "-" in their columns.
const (
	tagState       = "state"
	tagTick        = "tick"
	tagParts       = "parts_total"
	tagGood        = "good_total"
	tagReject      = "reject_total"
	tagTemperature = "temperature"
	tagPressure    = "pressure"
	tagSpindle     = "spindle_speed"
)

// stateNames are the names of the state tag's values, by plcsim's register map
// (simulators/README.md). It never changes.
var stateNames = [...]string{1: "running", 2: "idle", 3: "blocked", 4: "down", 5: "setup", 6: "maintenance"}

// viewConfig is what the view shows besides the messages.
type viewConfig struct {
	Gateway, Site, Area, Line string
	// Devices are the machine rows, in order.
	Devices []string
	// Header lines shown on top of the terminal view (where plcsim and the broker listen, the
	// log file).
	Header []string
	// Color enables ANSI colors for the machine states in the terminal view.
	Color bool
}

// view holds the latest telemetry of each device and the gateway's stats and status. handle
// feeds it from the broker; the drawing methods read it. Its methods are safe for concurrent use.
type view struct {
	cfg         viewConfig
	statsTopic  string
	statusTopic string

	mu       sync.Mutex // guards the fields below
	start    time.Time  // t=0 of the plain lines and of "up"; set by run
	machines map[string]*machineRow
	stats    gatewayStats
	statsAt  time.Time // when the last stats arrived; zero before the first
	status   gatewayStatus
	bad      int // messages on our topics that did not decode
}

// machineRow is one device's telemetry. Values merge message after message, so that a tag left
// out of a message (a deadband) keeps its last value.
type machineRow struct {
	values map[string]json.RawMessage
	ts     time.Time // of the last telemetry; zero before the first
}

// gatewayStats is the part of the gateway stats message the view shows (docs/mqtt.md).
type gatewayStats struct {
	Buffer struct {
		Depth     uint64 `json:"depth"`
		FileBytes int64  `json:"file_bytes"`
	} `json:"buffer"`
	Publish struct {
		Published uint64  `json:"published"`
		Acked     uint64  `json:"acked"`
		Rate      float64 `json:"rate"`
	} `json:"publish"`
}

// gatewayStatus is the retained status message.
type gatewayStatus struct {
	State   string `json:"state"`
	Session uint64 `json:"session"`
}

// newView returns a view whose clock starts at start; run restarts it.
func newView(cfg viewConfig, start time.Time) *view {
	v := &view{
		cfg:         cfg,
		start:       start,
		statsTopic:  "floorlink/v1/" + cfg.Site + "/gateway/" + cfg.Gateway + "/stats",
		statusTopic: "floorlink/v1/" + cfg.Site + "/gateway/" + cfg.Gateway + "/status",
		machines:    make(map[string]*machineRow, len(cfg.Devices)),
	}
	for _, d := range cfg.Devices {
		v.machines[d] = &machineRow{values: map[string]json.RawMessage{}}
	}
	return v
}

// handle takes one message published under floorlink/#, arrived at now. Telemetry is recognised
// by its last two topic levels, {device}/telemetry, as the default topic template ends.
func (v *view) handle(topic string, payload []byte, now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	switch {
	case topic == v.statsTopic:
		var s gatewayStats
		if err := json.Unmarshal(payload, &s); err != nil {
			v.bad++
			return
		}
		v.stats, v.statsAt = s, now
	case topic == v.statusTopic:
		var s gatewayStatus
		if err := json.Unmarshal(payload, &s); err != nil {
			v.bad++
			return
		}
		v.status = s
	default:
		rest, ok := strings.CutSuffix(topic, "/telemetry")
		if !ok {
			return
		}
		row := v.machines[rest[strings.LastIndexByte(rest, '/')+1:]]
		if row == nil {
			return
		}
		var m struct {
			TS     time.Time                  `json:"ts"`
			Values map[string]json.RawMessage `json:"values"`
		}
		if err := json.Unmarshal(payload, &m); err != nil {
			v.bad++
			return
		}
		for k, val := range m.Values { // Unmarshal copied them out of payload
			row.values[k] = val
		}
		row.ts = m.TS
		if row.ts.IsZero() { // not the agent's, but a row with values must not show "waiting"
			row.ts = now
		}
	}
}

// run draws the view on w once a second until ctx ends: in a terminal each frame replaces the
// last one, otherwise each refresh appends plain lines.
func (v *view) run(ctx context.Context, w io.Writer, terminal bool) error {
	// The agent can take a moment to open its buffer: count from the first frame, so that
	// refresh n is t=ns.
	v.mu.Lock()
	v.start = time.Now()
	v.mu.Unlock()
	var buf []byte
	draw := func(now time.Time) error {
		if terminal {
			buf = v.appendFrame(buf[:0], now)
		} else {
			buf = v.appendPlain(buf[:0], now)
		}
		if _, err := w.Write(buf); err != nil {
			return fmt.Errorf("write the view: %w", err)
		}
		return nil
	}
	if terminal { // a blank screen for a second looks broken
		if err := draw(time.Now()); err != nil {
			return err
		}
	}
	tk := time.NewTicker(time.Second)
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

// appendPlain appends one refresh in plain mode: the machine lines, then the gateway line.
func (v *view) appendPlain(dst []byte, now time.Time) []byte {
	v.mu.Lock()
	defer v.mu.Unlock()
	t := strconv.FormatInt(int64(now.Sub(v.start).Round(time.Second)/time.Second), 10) + "s"
	for _, name := range v.cfg.Devices {
		r := v.machines[name]
		age := "-"
		if !r.ts.IsZero() {
			age = strconv.FormatFloat(max(now.Sub(r.ts), 0).Seconds(), 'f', 1, 64) + "s"
		}
		dst = appendPairs(dst,
			"t", t,
			"machine", name,
			"tick", r.text(tagTick),
			"state", r.state(),
			"parts", r.text(tagParts),
			"good", r.text(tagGood),
			"reject", r.text(tagReject),
			"temperature", r.text(tagTemperature),
			"pressure", r.text(tagPressure),
			"spindle", r.text(tagSpindle),
			"age", age)
	}
	status, session := "-", "-"
	if v.status.State != "" {
		status, session = v.status.State, strconv.FormatUint(v.status.Session, 10)
	}
	depth, fileBytes, published, acked, rate, statsAge := "-", "-", "-", "-", "-", "-"
	if !v.statsAt.IsZero() {
		s := &v.stats
		depth = strconv.FormatUint(s.Buffer.Depth, 10)
		fileBytes = strconv.FormatInt(s.Buffer.FileBytes, 10)
		published = strconv.FormatUint(s.Publish.Published, 10)
		acked = strconv.FormatUint(s.Publish.Acked, 10)
		rate = strconv.FormatFloat(s.Publish.Rate, 'f', 1, 64)
		statsAge = strconv.FormatFloat(max(now.Sub(v.statsAt), 0).Seconds(), 'f', 1, 64) + "s"
	}
	return appendPairs(dst,
		"t", t,
		"gateway", v.cfg.Gateway,
		"status", status,
		"session", session,
		"depth", depth,
		"file_bytes", fileBytes,
		"published", published,
		"acked", acked,
		"rate", rate,
		"stats_age", statsAge)
}

// appendPairs appends "k1=v1 k2=v2 ...\n".
func appendPairs(dst []byte, kv ...string) []byte {
	for i := 0; i < len(kv); i += 2 {
		if i > 0 {
			dst = append(dst, ' ')
		}
		dst = append(dst, kv[i]...)
		dst = append(dst, '=')
		if val := kv[i+1]; val == "" || strings.ContainsAny(val, " =\"\t\n") {
			dst = strconv.AppendQuote(dst, val)
		} else {
			dst = append(dst, val...)
		}
	}
	return append(dst, '\n')
}

// text is tag's published value as JSON wrote it, or "-" when it is missing or null.
func (r *machineRow) text(tag string) string {
	raw := bytes.TrimSpace(r.values[tag])
	switch {
	case len(raw) == 0, string(raw) == "null":
		return "-"
	case raw[0] == '"': // integers beyond 2^53 come as strings
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
	}
	return string(raw)
}

// state is the name of the state tag's value, or the value itself when it has no name.
func (r *machineRow) state() string {
	s := r.text(tagState)
	if n, err := strconv.ParseUint(s, 10, 16); err == nil && n < uint64(len(stateNames)) && stateNames[n] != "" {
		return stateNames[n]
	}
	return s
}

// float is tag's value formatted with prec decimals, or "-".
func (r *machineRow) float(tag string, prec int) string {
	f, err := strconv.ParseFloat(r.text(tag), 64)
	if err != nil {
		return "-"
	}
	return strconv.FormatFloat(f, 'f', prec, 64)
}

// ANSI sequences of the terminal view.
const (
	ansiHomeClear = "\x1b[H\x1b[2J"
	ansiBold      = "\x1b[1m"
	ansiDim       = "\x1b[2m"
	ansiReset     = "\x1b[0m"
)

// stateColors are the ANSI colors of the states in the terminal view. It never changes.
var stateColors = map[string]string{
	"running": "\x1b[32m", "idle": "\x1b[33m", "blocked": "\x1b[33m", "down": "\x1b[31m",
	"setup": "\x1b[36m", "maintenance": "\x1b[36m",
}

// appendFrame appends one terminal frame: home, clear, then the whole view, in one write so that
// the terminal never shows half a frame.
func (v *view) appendFrame(dst []byte, now time.Time) []byte {
	v.mu.Lock()
	defer v.mu.Unlock()
	style := func(code, s string) string {
		if !v.cfg.Color {
			return s
		}
		return code + s + ansiReset
	}
	dst = append(dst, ansiHomeClear...)
	up := now.Sub(v.start).Truncate(time.Second)
	dst = fmt.Appendf(dst, "%s   gateway %s   %s/%s/%s   up %s   Ctrl-C stops\n",
		style(ansiBold, "Floorlink demo"), v.cfg.Gateway, v.cfg.Site, v.cfg.Area, v.cfg.Line, up)
	for _, h := range v.cfg.Header {
		dst = append(dst, style(ansiDim, h)...)
		dst = append(dst, '\n')
	}
	dst = append(dst, '\n')

	nameWidth := len("MACHINE")
	for _, name := range v.cfg.Devices {
		nameWidth = max(nameWidth, utf8.RuneCountInString(name))
	}
	const row = "%-*s  %-11s %10s %8s %8s %6s %7s %9s %11s %6s\n"
	dst = fmt.Appendf(dst, row, nameWidth, "MACHINE", "STATE", "TICK", "PARTS", "GOOD", "REJECT",
		"TEMP °C", "PRESS bar", "SPINDLE rpm", "AGE")
	for _, name := range v.cfg.Devices {
		r := v.machines[name]
		state := r.state()
		if r.ts.IsZero() {
			state = "waiting"
		}
		// Pad before coloring: the escape codes take no columns but count in a width.
		padded := fmt.Sprintf("%-11s", state)
		if c, ok := stateColors[state]; ok {
			padded = style(c, padded)
		}
		age := "-"
		if !r.ts.IsZero() {
			age = formatAge(now.Sub(r.ts))
		}
		dst = fmt.Appendf(dst, "%-*s  %s %10s %8s %8s %6s %7s %9s %11s %6s\n", nameWidth, name, padded,
			r.text(tagTick), r.text(tagParts), r.text(tagGood), r.text(tagReject),
			r.float(tagTemperature, 1), r.float(tagPressure, 2), r.text(tagSpindle), age)
	}
	dst = append(dst, '\n')

	status := "connecting"
	if v.status.State != "" {
		status = fmt.Sprintf("%s, session %d", v.status.State, v.status.Session)
	}
	dst = fmt.Appendf(dst, "%-*s  %s\n", nameWidth, "GATEWAY", status)
	if v.statsAt.IsZero() {
		dst = fmt.Appendf(dst, "%-*s  no stats message yet\n", nameWidth, "")
	} else {
		s := &v.stats
		dst = fmt.Appendf(dst, "%-*s  %d records, %s   (stats %s ago)\n", nameWidth, "BUFFER",
			s.Buffer.Depth, formatBytes(s.Buffer.FileBytes), formatAge(now.Sub(v.statsAt)))
		dst = fmt.Appendf(dst, "%-*s  %d published, %d acknowledged, %.1f msg/s\n", nameWidth, "PUBLISH",
			s.Publish.Published, s.Publish.Acked, s.Publish.Rate)
	}
	if v.bad > 0 {
		dst = fmt.Appendf(dst, "%-*s  %d messages did not decode\n", nameWidth, "", v.bad)
	}
	return dst
}

// formatAge is d for a human: tenths of a second while short, whole seconds after.
func formatAge(d time.Duration) string {
	d = max(d, 0)
	if d < 10*time.Second {
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
	}
	return d.Round(time.Second).String()
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
