package config

import (
	"fmt"
	"strings"
)

// synonyms maps keys integrators bring from other tools (Telegraf's modbus input, Node-RED,
// PLC vendor software) to ours. They are only suggestions; the key is still an error.
var synonyms = map[string]string{
	"slave_id": "unit_id", "slave": "unit_id", "unit": "unit_id", "device_id": "unit_id",
	"data_type": "type", "datatype": "type",
	"register": "address", "controller": "address", "host": "address", "port": "address",
	"interval": "poll_interval", "scan_rate": "poll_interval",
	"broker": "brokers", "server": "brokers", "servers": "brokers", "url": "brokers",
	"user": "username", "pass": "password", "passwd": "password",
	"topic": "topic_template", "baudrate": "baud", "baud_rate": "baud",
	"tz": "timezone", "time_zone": "timezone", "dir": "data_dir", "data_directory": "data_dir",
	"scaling": "scale", "factor": "scale", "units": "unit", "order": "byte_order",
	"endianness": "byte_order", "points": "tags", "fields": "tags", "registers": "tags",
}

// unknownKey writes the message for a key that is not in keys: a suggestion when one is close,
// else the valid keys when they are few enough to read.
func unknownKey(key string, keys []string) string {
	if s := suggest(key, keys); s != "" {
		return fmt.Sprintf("unknown key (did you mean %s?)", s)
	}
	if len(keys) == 1 {
		return fmt.Sprintf("unknown key (want %s)", keys[0])
	}
	if len(keys) <= 8 {
		return fmt.Sprintf("unknown key (want one of %s)", strings.Join(keys, ", "))
	}
	return "unknown key (see docs/configuration.md)"
}

// suggest returns the key of keys that key most likely meant, or "".
func suggest(key string, keys []string) string {
	norm := normalizeKey(key)
	for _, k := range keys {
		if normalizeKey(k) == norm { // keepAlive, keep-alive, KEEP_ALIVE
			return k
		}
	}
	if s, ok := synonyms[norm]; ok {
		for _, k := range keys {
			if k == s {
				return k
			}
		}
	}
	best, bestDist := "", 0
	for _, k := range keys {
		d := editDistance(norm, normalizeKey(k))
		if best == "" || d < bestDist {
			best, bestDist = k, d
		}
	}
	// A third of the key's length catches "pol_interval" and "adress" without turning "id"
	// into "line".
	limit := max(1, min(len(norm), len(best))/3)
	if best != "" && bestDist <= limit {
		return best
	}
	return ""
}

// normalizeKey folds case and turns - and camelCase humps into _, so that the spellings of
// other config styles compare equal to ours.
func normalizeKey(s string) string {
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == '-' || r == ' ':
			b.WriteByte('_')
		case 'A' <= r && r <= 'Z':
			if i > 0 && s[i-1] >= 'a' && s[i-1] <= 'z' {
				b.WriteByte('_')
			}
			b.WriteRune(r + 'a' - 'A')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// editDistance is the Levenshtein distance between a and b, over bytes (keys are ASCII; a
// non-ASCII key is far from all of ours anyway).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
