package opcua

import (
	"fmt"
	"strings"

	"github.com/gopcua/opcua/ua"
)

// maxNodeIDLen bounds a tag address: longer ids are a config mistake, and every id travels in
// each Read and CreateMonitoredItems request, whose size is budgeted.
const maxNodeIDLen = 1024

// ParseNodeID parses a tag address: a node id in the OPC UA text form "ns=<index>;<type>=<id>"
// with type i (numeric), s (string), g (GUID) or b (base64 ByteString), e.g.
// "ns=2;s=Line1.M1.State" or "i=2258". Namespace 0 may omit "ns=0;". Namespace URIs ("nsu=")
// and server indexes are refused: a tag names a node of the device's own server.
func ParseNodeID(s string) (*ua.NodeID, error) {
	switch {
	case s == "":
		return nil, fmt.Errorf("empty node id: want e.g. \"ns=2;s=Line1.M1.State\" or \"i=2258\"")
	case len(s) > maxNodeIDLen:
		return nil, fmt.Errorf("node id of %d bytes: at most %d", len(s), maxNodeIDLen)
	case strings.HasPrefix(s, "nsu="), strings.HasPrefix(s, "svr="):
		return nil, fmt.Errorf("node id %q: namespace URIs and server indexes are not supported: use ns=<index>", s)
	}
	rest := s
	if strings.HasPrefix(rest, "ns=") {
		_, after, ok := strings.Cut(rest, ";")
		if !ok {
			return nil, fmt.Errorf("node id %q: want \"ns=<index>;<i|s|g|b>=<id>\"", s)
		}
		rest = after
	}
	if len(rest) < 2 || rest[1] != '=' || !strings.ContainsRune("isgb", rune(rest[0])) {
		// gopcua accepts a bare string as ns=0;s=…, which turns a typo into a silent BadNodeIdUnknown.
		return nil, fmt.Errorf("node id %q: want \"ns=<index>;<i|s|g|b>=<id>\"", s)
	}
	if len(rest) == 2 {
		return nil, fmt.Errorf("node id %q: empty identifier", s)
	}
	id, err := ua.ParseNodeID(s)
	if err != nil {
		return nil, fmt.Errorf("node id %q: %w", s, err)
	}
	// An identifier that decodes to nothing ("b=" followed by only whitespace) names no node.
	if strings.HasSuffix(id.String(), "=") {
		return nil, fmt.Errorf("node id %q: empty identifier", s)
	}
	return id, nil
}
