package config

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// sizeUnits are the units a size may carry. Both families are accepted because integrators copy
// numbers from datasheets (MB) and from Linux tools (MiB); guessing which one a bare "M" means
// is how a 512 MB card gets a 537 MB buffer, so there is no bare "M".
var sizeUnits = []struct {
	name string
	mult int64
}{
	{"B", 1},
	{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000}, {"TB", 1000 * 1000 * 1000 * 1000},
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
}

const wantSize = "want a size like 512MiB (a whole number and one of B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)"

// parseSize reads "512MiB", "1 GB" or a plain number of bytes.
func parseSize(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && '0' <= s[i] && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil {
		return 0, false
	}
	unit := strings.TrimLeft(s[i:], " ")
	if unit == "" {
		return n, true
	}
	for _, u := range sizeUnits {
		if u.name == unit {
			if n > math.MaxInt64/u.mult {
				return 0, false
			}
			return n * u.mult, true
		}
	}
	return 0, false
}

// formatSize writes n with the largest binary unit that divides it, so that the defaults and
// limits in messages read as they are written in the file.
func formatSize(n int64) string {
	for i := len(sizeUnits) - 1; i >= 0; i-- {
		u := sizeUnits[i]
		if strings.HasSuffix(u.name, "iB") && n != 0 && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}

const wantDuration = "want a duration like 500ms or 2s"

// parseDuration reads a Go duration ("1m30s"). A bare 0 is accepted (it needs no unit); any
// other bare number is not, because "timeout: 5" could mean seconds or milliseconds.
func parseDuration(s string) (time.Duration, string, bool) {
	s = strings.TrimSpace(s)
	if s == "0" {
		return 0, "", true
	}
	v, err := time.ParseDuration(s)
	if err == nil {
		return v, "", true
	}
	hint := ""
	switch {
	case s != "" && strings.Trim(s, "0123456789.") == "":
		hint = " (a number needs a unit: ns, us, ms, s, m or h)"
	case strings.HasSuffix(s, "d") || strings.HasSuffix(s, "w"):
		hint = " (units are ns, us, ms, s, m and h: write 7 days as 168h)"
	case strings.Contains(s, " "):
		hint = " (no spaces: 1m30s)"
	}
	return 0, hint, false
}

// parseInt reads a decimal integer. Leading zeros are refused: YAML 1.1 tools read 010 as 8.
func parseInt(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	digits := strings.TrimPrefix(strings.TrimPrefix(s, "-"), "+")
	if digits == "" || len(digits) > 1 && digits[0] == '0' {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// parseFloat reads a decimal number, and YAML's .inf and .nan so that they get the clearer
// "must be finite" rather than "not a number".
func parseFloat(s string) (float64, bool) {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case ".inf", "+.inf":
		return math.Inf(1), true
	case "-.inf":
		return math.Inf(-1), true
	case ".nan":
		return math.NaN(), true
	}
	if strings.ContainsAny(s, "_xXpP") { // strconv would take 0x1p-2 and 1_000; YAML does not
		return 0, false
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		if ne, ok := err.(*strconv.NumError); !ok || ne.Err != strconv.ErrRange {
			return 0, false
		}
	}
	return v, true
}
