package watch

import (
	"strconv"
	"strings"
	"time"
)

// Plain lines, for a pipe or a file (docs/operations.md has them too). Each refresh prints, in
// the model's order, one line per gateway, one per device or asset, then one summary line that
// closes the refresh:
//
//	t=3s gateway=gw-1 site=plant status=online session=4 depth=2 file_bytes=32768 oldest_age=0.4s dropped=0 published=40 acked=38 rate=6.0 stats_age=1.5s event=-
//	t=3s device=m1 site=plant area=body line=line-1 gateway=gw-1 seq=17 age=0.2s event=- parts_total=1 state=1 temperature=- quality.temperature=bad:timeout
//	t=3s asset=press-1 site=plant area=body line=line-1 gateway=gw-1 seq=40 age=30.1s event=- availability=0.91 oee=0.78 shift=A
//	t=3s messages=120 undecodable=0 broker=connected
//
// The second key names the line: gateway, device, asset or messages. The keys before the
// values are always there, in this order, "-" when not known yet. Then come the record's values
// by name (a value published as null is "-"), then quality.NAME for each value that is not
// good. A value whose name is one of the line's own keys is written values.NAME. A value
// holding a space, '=' or '"' is quoted as a Go string; characters other than letters, digits
// and "_.:-" in a name become '_'. t is the time since the view started, in whole seconds;
// age is the time since the record's ts, stats_age since the stats message arrived.

// AppendPlain appends one refresh of plain lines, as of now.
func (m *Model) AppendPlain(dst []byte, now time.Time) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := strconv.FormatInt(int64(now.Sub(m.startOr(now)).Round(time.Second)/time.Second), 10) + "s"
	var kv []string
	for _, s := range m.sortedSites() {
		for _, g := range s.sortedGateways() {
			status, session := "-", "-"
			if g.status != nil {
				status, session = g.status.State, strconv.FormatUint(g.status.Session, 10)
			}
			depth, fileBytes, oldest, dropped, published, acked, rate, statsAge := "-", "-", "-", "-", "-", "-", "-", "-"
			if st := g.stats; st != nil {
				depth = strconv.FormatUint(st.Depth, 10)
				fileBytes = strconv.FormatInt(st.FileBytes, 10)
				oldest = seconds(st.OldestAge)
				dropped = strconv.FormatUint(st.Dropped, 10)
				published = strconv.FormatUint(st.Published, 10)
				acked = strconv.FormatUint(st.Acked, 10)
				rate = strconv.FormatFloat(st.Rate, 'f', 1, 64)
				statsAge = seconds(now.Sub(g.statsAt))
			}
			dst = appendPairs(dst, "t", t, "gateway", g.id, "site", s.name, "status", status, "session", session,
				"depth", depth, "file_bytes", fileBytes, "oldest_age", oldest, "dropped", dropped,
				"published", published, "acked", acked, "rate", rate, "stats_age", statsAge, "event", eventName(g.event))
		}
		for _, l := range s.sortedLines() {
			for _, src := range l.sortedSources() {
				kind := "device"
				if src.asset {
					kind = "asset"
				}
				seq, age := "-", "-"
				if src.seen {
					seq, age = strconv.FormatUint(src.seq, 10), seconds(now.Sub(src.ts))
				}
				kv = append(kv[:0], "t", t, kind, src.name, "site", s.name, "area", l.key.area, "line", l.key.line,
					"gateway", dash(src.gateway), "seq", seq, "age", age, "event", eventName(src.event))
				fixed := len(kv)
				values := src.sortedValues()
				for _, v := range values {
					name := key(v.Name)
					for i := 0; i < fixed; i += 2 {
						if kv[i] == name {
							name = "values." + name
							break
						}
					}
					text := v.Text
					if v.Null {
						text = "-"
					}
					kv = append(kv, name, text)
				}
				for _, v := range values {
					if v.Quality != "" {
						kv = append(kv, "quality."+key(v.Name), v.Quality)
					}
				}
				dst = appendPairs(dst, kv...)
			}
		}
	}
	return appendPairs(dst, "t", t, "messages", strconv.FormatUint(m.messages, 10),
		"undecodable", strconv.FormatUint(m.undecodable, 10), "broker", dash(m.conn))
}

// startOr returns the view's t=0, or now when Run has not set it.
func (m *Model) startOr(now time.Time) time.Time {
	if m.start.IsZero() {
		return now
	}
	return m.start
}

func eventName(e *event) string {
	if e == nil {
		return "-"
	}
	return dash(e.name)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// seconds is d in seconds with one decimal and a unit: "0.4s".
func seconds(d time.Duration) string {
	return strconv.FormatFloat(max(d, 0).Seconds(), 'f', 1, 64) + "s"
}

// key makes name safe as a key of a plain line.
func key(name string) string {
	ok := func(r rune) bool {
		return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_.:-", r)
	}
	for _, r := range name {
		if !ok(r) {
			return strings.Map(func(r rune) rune {
				if ok(r) {
					return r
				}
				return '_'
			}, name)
		}
	}
	if name == "" {
		return "_"
	}
	return name
}

// appendPairs appends "k1=v1 k2=v2 ...\n", quoting values that would not read back.
func appendPairs(dst []byte, kv ...string) []byte {
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			dst = append(dst, ' ')
		}
		dst = append(dst, kv[i]...)
		dst = append(dst, '=')
		if v := kv[i+1]; v == "" || strings.ContainsAny(v, " =\"\t\n\r") {
			dst = strconv.AppendQuote(dst, v)
		} else {
			dst = append(dst, v...)
		}
	}
	return append(dst, '\n')
}
