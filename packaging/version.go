package main

import (
	"fmt"
	"regexp"
	"strings"
)

var (
	// describeSuffix is what git describe appends past a tag: commits since it and the hash.
	describeSuffix = regexp.MustCompile(`^(.+)-([0-9]+)-g([0-9a-f]+)$`)
	// bareHash is git describe --always without any tag.
	bareHash = regexp.MustCompile(`^[0-9a-f]{7,40}$`)
	// debianUpstream is what a Debian upstream version without a revision may hold.
	debianUpstream = regexp.MustCompile(`^[0-9][A-Za-z0-9.+~]*$`)
)

// DebianVersion turns a version as `git describe --tags --always --dirty` prints it into a
// Debian version that sorts the way the builds were made: a pre-release before its release
// (~), commits past a tag after it (+), and a build without any tag before every release
// (0.0.0+g<hash>). Debian versions must start with a digit and, without a revision, hold no
// hyphen, so "v1.2.3-rc.1-4-gabc1234-dirty" becomes "1.2.3~rc.1+4.gabc1234.dirty".
func DebianVersion(v string) (string, error) {
	s := v
	if len(s) > 1 && s[0] == 'v' && s[1] >= '0' && s[1] <= '9' {
		s = s[1:]
	}
	var meta []string
	s, dirty := strings.CutSuffix(s, "-dirty")
	if m := describeSuffix.FindStringSubmatch(s); m != nil {
		s, meta = m[1], []string{m[2], "g" + m[3]}
	}
	switch {
	case bareHash.MatchString(s) && !strings.Contains(s, "."):
		s, meta = "0.0.0", append([]string{"g" + s}, meta...)
	case s != "" && (s[0] < '0' || s[0] > '9'): // "dev" and other names
		s, meta = "0.0.0", append([]string{s}, meta...)
	default:
		if rel, pre, ok := strings.Cut(s, "-"); ok {
			s = rel + "~" + strings.ReplaceAll(pre, "-", ".")
		}
	}
	if dirty {
		meta = append(meta, "dirty")
	}
	if len(meta) > 0 {
		s += "+" + strings.Join(meta, ".")
	}
	if !debianUpstream.MatchString(s) {
		return "", fmt.Errorf("version %q: %q is not a Debian version (digits first, then letters, digits and . + ~)", v, s)
	}
	return s, nil
}
