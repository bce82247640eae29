package opcua

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/server"
	"github.com/gopcua/opcua/ua"
)

// ServerURI is the ApplicationURI of plcsim's OPC UA server, and the URI of namespace 1.
const ServerURI = "urn:floorlink:plcsim"

// backend is one gopcua server instance behind the public listener. gopcua's server listens on
// the address of its first endpoint, so it gets a private loopback port and the Server forwards
// every public connection to it: that way a stop closes every client socket at once (gopcua's
// Close leaves them open for 10 s) and a restart starts from a fresh server on the same port.
type backend struct {
	s       *Server
	srv     *server.Server
	private string // 127.0.0.1:port gopcua listens on
	cancel  context.CancelFunc
	urls    []string    // public endpoint URLs
	subs    *subService // subscriptions and monitored items

	cpMu  sync.Mutex
	cps   map[string]*continuation // guarded by cpMu
	cpSeq uint64
	order []string // continuation point keys, oldest first; guarded by cpMu
}

// continuation is the rest of one node's references after a Browse or BrowseNext page.
type continuation struct {
	refs    []*ua.ReferenceDescription
	perNode int
}

// newBackend starts a gopcua server for public address pub on a free private port.
func (s *Server) newBackend(pub net.Addr) (*backend, error) {
	var lastErr error
	for range 5 {
		// gopcua cannot report the port it picked for :0, so pick one and retry if another
		// process took it before gopcua listened.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("opcua server: private listener: %w", err)
		}
		private := l.Addr().String()
		l.Close()
		b, err := s.startBackend(pub, private)
		if err == nil {
			return b, nil
		}
		lastErr = err
		if !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
	}
	return nil, fmt.Errorf("opcua server: start: %w", lastErr)
}

func (s *Server) startBackend(pub net.Addr, private string) (*backend, error) {
	b := &backend{s: s, private: private, urls: s.endpointURLs(pub), cps: map[string]*continuation{}}
	b.subs = newSubService(b)
	_, pport, _ := net.SplitHostPort(private)
	opts := []server.Option{
		server.EndPoint("127.0.0.1", atoi(pport)), // the first endpoint is where gopcua listens
		server.EnableSecurity("None", ua.MessageSecurityModeNone),
		server.EnableAuthMode(ua.UserTokenTypeAnonymous),
		server.ServerName("plcsim"),
		server.ManufacturerName("Floorlink"),
		server.ProductName("plcsim"),
		server.SetLogger(upstreamLog{s.log.With("server", "gopcua")}),
	}
	port := portOf(pub)
	for _, u := range b.urls {
		host, _, _ := net.SplitHostPort(strings.TrimPrefix(u, "opc.tcp://"))
		opts = append(opts, server.EndPoint(host, port))
	}
	srv := server.New(opts...)
	b.srv = srv
	srv.AddNamespace(&emptyNS{name: ServerURI})
	srv.AddNamespace(&lineNS{b: b})
	ns0, err := srv.Namespace(0)
	if err != nil {
		return nil, err
	}
	if objects := ns0.Objects(); objects != nil {
		objects.AddRef(b.nodeOf(0), id.Organizes, true)
	}
	b.register()
	ctx, cancel := context.WithCancel(context.Background())
	if err := srv.Start(ctx); err != nil {
		cancel()
		return nil, err
	}
	b.cancel = cancel
	go b.subs.run(ctx)
	return b, nil
}

// stop ends the gopcua server and the subscriptions. It may take a while: gopcua's Close waits
// up to 10 s for channel goroutines.
func (b *backend) stop() {
	b.srv.Close()
	b.cancel()
	<-b.subs.done
}

// accept forwards every connection of ln to backend b until ln closes.
func (s *Server) accept(ln net.Listener, b *backend) {
	for {
		c, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		s.mu.Lock()
		if s.b != b {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.forward(c, b)
		}()
	}
}

// forward copies bytes both ways between client c and b's private port until either side
// closes, then closes both.
func (s *Server) forward(c net.Conn, b *backend) {
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	d := net.Dialer{Timeout: 5 * time.Second}
	p, err := d.Dial("tcp", b.private)
	if err != nil {
		s.log.Warn("opcua forward", "client", c.RemoteAddr().String(), "err", err)
		return
	}
	s.mu.Lock()
	if s.b != b {
		s.mu.Unlock()
		p.Close()
		return
	}
	s.conns[p] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, p)
		s.mu.Unlock()
		p.Close()
	}()
	done := make(chan struct{})
	go func() {
		io.Copy(p, c)
		p.Close()
		close(done)
	}()
	io.Copy(c, p)
	c.Close()
	<-done
}

// notify stores the current value of every node in ids for the monitored items on it; the
// subscriptions publish it at the end of their interval.
func (b *backend) notify(ids []*ua.NodeID, now time.Time) { b.subs.notify(ids, now) }

// nodeOf returns a gopcua Node standing for the line's node i, for gopcua's code that wants
// one: the Objects folder's reference to Line1 and the TypeDefinition of browse results.
func (b *backend) nodeOf(i int) *server.Node {
	n := &b.s.sp.nodes[i]
	return server.NewNode(n.id, server.Attributes{
		ua.AttributeIDBrowseName: server.DataValueFromValue(&ua.QualifiedName{NamespaceIndex: NamespaceIndex, Name: n.name}),
		ua.AttributeIDNodeClass:  server.DataValueFromValue(uint32(n.class())),
	}, server.References{{
		ReferenceTypeID: ua.NewNumericNodeID(0, id.HasTypeDefinition),
		IsForward:       true,
		NodeID:          ua.NewNumericExpandedNodeID(0, n.typeDefinition()),
		BrowseName:      &ua.QualifiedName{},
		DisplayName:     ua.NewLocalizedText(""),
		TypeDefinition:  ua.NewTwoByteExpandedNodeID(0),
	}}, nil)
}

// lineNS is the line's namespace as gopcua sees it; reads and browses of it go through the
// handlers, gopcua itself only asks for nodes and initial values of monitored items.
type lineNS struct {
	b  *backend
	id uint16
}

func (ns *lineNS) Name() string                        { return NamespaceURI }
func (ns *lineNS) AddNode(n *server.Node) *server.Node { return n }
func (ns *lineNS) Node(nid *ua.NodeID) *server.Node {
	i := ns.b.s.sp.lookup(nid)
	if i < 0 {
		return nil
	}
	return ns.b.nodeOf(i)
}
func (ns *lineNS) Objects() *server.Node { return ns.b.nodeOf(0) }
func (ns *lineNS) Root() *server.Node    { return nil }
func (ns *lineNS) Browse(bd *ua.BrowseDescription) *ua.BrowseResult {
	return ns.b.s.sp.browse(bd)
}
func (ns *lineNS) ID() uint16      { return ns.id }
func (ns *lineNS) SetID(id uint16) { ns.id = id }
func (ns *lineNS) Attribute(nid *ua.NodeID, a ua.AttributeID) *ua.DataValue {
	return ns.b.read(nid, a, ua.TimestampsToReturnBoth, time.Now())
}
func (ns *lineNS) SetAttribute(*ua.NodeID, ua.AttributeID, *ua.DataValue) ua.StatusCode {
	return ua.StatusBadNotWritable
}

// emptyNS is namespace 1, the server's own, with no nodes: as on many PLCs, the line's namespace
// is not the first after ns=0, so clients must resolve indices from the NamespaceArray.
type emptyNS struct {
	name string
	id   uint16
}

func (ns *emptyNS) Name() string                        { return ns.name }
func (ns *emptyNS) AddNode(n *server.Node) *server.Node { return n }
func (ns *emptyNS) Node(*ua.NodeID) *server.Node        { return nil }
func (ns *emptyNS) Objects() *server.Node               { return nil }
func (ns *emptyNS) Root() *server.Node                  { return nil }
func (ns *emptyNS) ID() uint16                          { return ns.id }
func (ns *emptyNS) SetID(id uint16)                     { ns.id = id }
func (ns *emptyNS) Browse(*ua.BrowseDescription) *ua.BrowseResult {
	return &ua.BrowseResult{StatusCode: ua.StatusBadNodeIDUnknown}
}
func (ns *emptyNS) Attribute(*ua.NodeID, ua.AttributeID) *ua.DataValue {
	return &ua.DataValue{EncodingMask: ua.DataValueStatusCode, Status: ua.StatusBadNodeIDUnknown}
}
func (ns *emptyNS) SetAttribute(*ua.NodeID, ua.AttributeID, *ua.DataValue) ua.StatusCode {
	return ua.StatusBadNodeIDUnknown
}

// upstreamLog adapts gopcua's printf-style logger to slog, at debug level: gopcua logs routine
// events (a closed channel, ~20 duplicate reference types at start) as errors.
type upstreamLog struct{ l *slog.Logger }

func (u upstreamLog) log(msg string, args []any) {
	if !u.l.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	u.l.Debug(strings.TrimSpace(fmt.Sprintf(msg, args...)))
}
func (u upstreamLog) Debug(msg string, args ...any) { u.log(msg, args) }
func (u upstreamLog) Info(msg string, args ...any)  { u.log(msg, args) }
func (u upstreamLog) Warn(msg string, args ...any)  { u.log(msg, args) }
func (u upstreamLog) Error(msg string, args ...any) { u.log(msg, args) }

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}
