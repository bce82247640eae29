package config

import (
	"fmt"
	"strings"
)

// expand replaces ${NAME}, ${NAME:-default} and $$ in s, one scalar's text. A "$" followed by
// anything else stays as it is, so a password such as "pa$word" needs no escape; "$$" is only
// needed before "{" or another "$".
//
// It returns the expanded text, whether any ${...} was expanded (the caller must then not echo
// the text in messages: it may hold a secret), and what went wrong. The messages name variables
// only, never values. A variable that is set but empty expands to "" unless a default is given:
// ${NAME:-default} uses the default when NAME is unset or empty, as the shell does.
func expand(s string, lookup func(string) (string, bool)) (out string, expanded bool, errs []string) {
	if !strings.Contains(s, "$") {
		return s, false, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' || i+1 == len(s) {
			b.WriteByte(c)
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
			continue
		case '{':
		default:
			b.WriteByte(c)
			continue
		}
		end := strings.IndexByte(s[i+2:], '}')
		if end < 0 {
			errs = append(errs, "unterminated ${ (write $${ for a literal ${)")
			b.WriteString(s[i:])
			break
		}
		ref := s[i+2 : i+2+end]
		i += 2 + end
		expanded = true
		name, def, hasDef := strings.Cut(ref, ":-")
		if !validVarName(name) {
			// The text is not shown: it is no variable's value, but it may be a piece of a
			// literal secret.
			errs = append(errs, "malformed ${...} (want ${NAME} or ${NAME:-default}, NAME made of letters, digits and _; write $${ for a literal ${)")
			continue
		}
		if hasDef && strings.Contains(def, "${") {
			errs = append(errs, fmt.Sprintf("the default of ${%s} holds ${: nested variables are not supported", name))
			continue
		}
		v, ok := lookup(name)
		switch {
		case hasDef && v == "":
			v = def
		case !ok:
			errs = append(errs, fmt.Sprintf("environment variable %s is not set (write ${%s:-default} for a fallback, or $${ for a literal ${)", name, name))
		}
		b.WriteString(v)
	}
	return b.String(), expanded, errs
}

func validVarName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
