package opcua

import (
	"strings"
	"testing"
)

func TestParseNodeID(t *testing.T) {
	good := map[string]string{
		"i=2258":                "i=2258",
		"ns=0;i=2258":           "i=2258",
		"ns=2;s=Line1.M1.State": "ns=2;s=Line1.M1.State",
		"ns=3;i=70000":          "ns=3;i=70000",
		"ns=1;g=5CE9DBCE-5D79-434C-9AC3-1CFBA9A6E92C": "ns=1;g=5CE9DBCE-5D79-434C-9AC3-1CFBA9A6E92C",
		"ns=1;b=AAEC":             "ns=1;b=AAEC",
		"ns=2;s=with;semicolon=x": "ns=2;s=with;semicolon=x",
	}
	for in, want := range good {
		id, err := ParseNodeID(in)
		if err != nil {
			t.Errorf("ParseNodeID(%q): %v", in, err)
			continue
		}
		if got := id.String(); !strings.EqualFold(got, want) {
			t.Errorf("ParseNodeID(%q) = %s, want %s", in, got, want)
		}
	}
	bad := map[string]string{
		"":                        "empty node id",
		"Line1.M1.State":          "want \"ns=<index>",
		"ns=2":                    "want \"ns=<index>",
		"ns=2;x=1":                "want \"ns=<index>",
		"ns=2;s=":                 "empty identifier",
		"ns=x;s=a":                "node id",
		"i=abc":                   "node id",
		"ns=70000;i=1":            "node id",
		"nsu=urn:x;s=a":           "namespace URIs",
		"ns=1;g=not-a-guid":       "node id",
		strings.Repeat("s", 2000): "at most 1024",
	}
	for in, want := range bad {
		if _, err := ParseNodeID(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseNodeID(%.40q) = %v, want an error containing %q", in, err, want)
		}
	}
}

// FuzzParseNodeID checks that any address either fails with an error or parses to a node id
// whose text form parses again to the same node id (a round trip).
func FuzzParseNodeID(f *testing.F) {
	for _, s := range []string{"i=2258", "ns=2;s=Line1.M1.State", "ns=1;g=5CE9DBCE-5D79-434C-9AC3-1CFBA9A6E92C", "ns=1;b=AAEC", "ns=65535;i=4294967295", "s=x", "ns=;s=", "nsu=a;i=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseNodeID(s)
		if err != nil {
			return
		}
		again, err := ParseNodeID(id.String())
		if err != nil {
			t.Fatalf("ParseNodeID(%q) = %s, which does not parse again: %v", s, id, err)
		}
		if again.String() != id.String() {
			t.Fatalf("round trip of %q: %s then %s", s, id, again)
		}
	})
}
