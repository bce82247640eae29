// Command gen writes buffer/testdata/format1.db, a buffer file in format_version 1 as an agent
// left it, and format1.json, what it holds. Tests never run it: the committed file is the
// fixture that newer binaries must open, migrate and deliver (buffer/migrate_test.go,
// cmd/floorlink/pkgtest). Regenerate it only for a new format (as format<N>.db beside the old
// ones, which stay):
//
//	go run ./buffer/testdata/gen -out buffer/testdata
//
// It lives under testdata so that ./... skips it: it imports agent/record, which buffer must not.
package main

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/floorlink/floorlink/agent/record"
	"github.com/floorlink/floorlink/buffer"
)

// Fixture is the content of format1.json.
type Fixture struct {
	FormatVersion int    `json:"format_version"`
	Epoch         string `json:"epoch"`
	Head          uint64 `json:"head"`
	// Cursor: the entries up to it were acknowledged by a broker and must not be sent again.
	Cursor uint64 `json:"cursor"`
	// States: the buffer's named states, values in hex. mqtt_session is the agent's session
	// counter (8-byte big-endian): the next session must be one more.
	States  map[string]string `json:"states"`
	Entries []Entry           `json:"entries"`
}

// Entry is one waiting entry: its payload (an agent/record v1 encoding) in hex, and the
// record as the MQTT contract's JSON shows it.
type Entry struct {
	Seq     uint64         `json:"seq"`
	Payload string         `json:"payload"`
	Kind    string         `json:"kind"`
	Source  string         `json:"source"`
	TS      string         `json:"ts"`
	Values  map[string]any `json:"values"`
	Quality map[string]any `json:"quality,omitempty"`
}

func main() {
	out := flag.String("out", "buffer/testdata", "directory to write format1.db and format1.json into")
	flag.Parse()
	if err := generate(*out); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func generate(dir string) error {
	dbPath := filepath.Join(dir, "format1.db")
	if _, err := os.Stat(dbPath); err == nil {
		return fmt.Errorf("%s exists: a committed fixture is never rewritten (remove it by hand to start over)", dbPath)
	}
	// Stamped in the past, so that no clock reads the entries as from the future; a reader
	// must switch max_age off or make it longer than their age.
	base := time.Date(2024, 3, 4, 6, 0, 0, 0, time.UTC)
	now := base.Add(5 * time.Second)
	tmp := dbPath + ".tmp"
	b, err := buffer.Open(tmp, buffer.Options{Now: func() time.Time { return now }}, nil)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runDone := make(chan error, 1)
	go func() { runDone <- b.Run(ctx) }()

	recs := []record.Record{
		{Kind: record.KindTelemetry, Source: "press-1", Time: base, Fields: []record.Field{
			record.UintField("parts_total", 1200), record.FloatField("temperature", 61.5),
			record.BoolField("running", true)}},
		{Kind: record.KindTelemetry, Source: "press-1", Time: base.Add(time.Second), Fields: []record.Field{
			record.UintField("parts_total", 1201), record.FloatField("temperature", 61.75),
			record.BoolField("running", true), record.NullField("oil_pressure", record.Bad, "timeout")}},
		{Kind: record.KindEvent, Source: "press-1", Time: base.Add(1500 * time.Millisecond), Fields: []record.Field{
			record.StringField("event", "disconnected"), record.StringField("error", "read holding registers 0-19: i/o timeout")}},
		{Kind: record.KindTelemetry, Source: "press-2", Time: base.Add(2 * time.Second), Fields: []record.Field{
			record.IntField("spindle_speed", -1500), record.StringField("mode", "auto"),
			record.UintField("counter64", 1<<60)}},
		{Kind: record.KindKPI, Source: "press-1", Time: base.Add(3 * time.Second), Fields: []record.Field{
			record.StringField("shift", "A"), record.FloatField("oee", 0.75), record.UintField("good_parts", 1190)}},
		{Kind: record.KindTelemetry, Source: "press-1", Time: base.Add(4 * time.Second), Fields: []record.Field{
			record.UintField("parts_total", 1203), record.FloatField("temperature", 62),
			record.BoolField("running", false)}},
	}
	var payloads [][]byte
	for i, r := range recs {
		p, err := r.AppendBinary(nil)
		if err != nil {
			return err
		}
		payloads = append(payloads, p)
		var states []buffer.State
		if i == 0 {
			// The session counter as the agent keeps it: sessions 1 to 3 have been.
			states = []buffer.State{{Key: "mqtt_session", Value: binary.BigEndian.AppendUint64(nil, 3)}}
		}
		if err := b.Append(p, states...); err != nil {
			return err
		}
	}
	if err := b.Flush(context.Background()); err != nil {
		return err
	}
	// The broker acknowledged the first record before the agent stopped.
	if err := b.Ack(1); err != nil {
		return err
	}
	cancel()
	if err := <-runDone; err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	fx := Fixture{FormatVersion: 1, Epoch: b.Epoch(), Head: b.Head(), Cursor: b.Cursor(),
		States: map[string]string{"mqtt_session": hex.EncodeToString(binary.BigEndian.AppendUint64(nil, 3))}}
	if err := b.Close(); err != nil {
		return err
	}
	for i, r := range recs {
		seq := uint64(i + 1)
		if seq <= fx.Cursor {
			continue
		}
		e := Entry{Seq: seq, Payload: hex.EncodeToString(payloads[i]), Kind: r.Kind.String(), Source: r.Source,
			TS: r.Time.UTC().Format("2006-01-02T15:04:05.000Z"), Values: map[string]any{}}
		for _, f := range r.Fields {
			e.Values[f.Name] = jsonValue(f)
			if f.Quality != record.Good {
				if e.Quality == nil {
					e.Quality = map[string]any{}
				}
				e.Quality[f.Name] = f.Quality.String() + ":" + f.Reason
			}
		}
		fx.Entries = append(fx.Entries, e)
	}
	// Compacted: the smallest file that holds it.
	if err := buffer.Compact(tmp, dbPath); err != nil {
		return err
	}
	if err := os.Remove(tmp); err != nil {
		return err
	}
	js, err := json.MarshalIndent(fx, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "format1.json"), append(js, '\n'), 0o644)
}

// jsonValue is a field's value as the MQTT contract writes it (docs/mqtt.md): null without a
// good value, 64-bit integers beyond 2^53 as strings.
func jsonValue(f record.Field) any {
	switch f.Kind {
	case record.Bool:
		return f.BoolValue()
	case record.Int:
		return f.IntValue()
	case record.Uint:
		if f.Bits > 1<<53 {
			return fmt.Sprint(f.Bits)
		}
		return f.Bits
	case record.Float:
		return f.FloatValue()
	case record.String:
		return f.Str
	}
	return nil
}
