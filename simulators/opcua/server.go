package opcua

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/ua"

	"github.com/floorlink/floorlink/simulators/line"
)

// Limits the server enforces and advertises under Server/ServerCapabilities/OperationLimits.
// gopcua's server never splits a response into chunks and its client drops a connection on a
// chunk over 65,535 bytes, so every limit keeps a response under ResponseBudget.
const (
	// MaxNodesPerRead replaces gopcua's hard-coded 32: 1,000 values of the line's widest type
	// (a three-Double array with both timestamps, ~45 bytes) stay under ResponseBudget.
	MaxNodesPerRead = 1000
	// MaxNodesPerWrite bounds a Write (every node answers BadNotWritable).
	MaxNodesPerWrite = 1000
	// MaxNodesPerBrowse bounds the nodes of one Browse; the references of one response are
	// bounded by BrowseBudget, the rest come by BrowseNext.
	MaxNodesPerBrowse = 100
	// MaxMonitoredItemsPerCall bounds one CreateMonitoredItems (and Delete, SetMonitoringMode).
	MaxMonitoredItemsPerCall = 1000
	// MaxMonitoredItemsPerSubscription bounds a subscription, so that a publish response with
	// every item changed stays under ResponseBudget; clients use several subscriptions beyond.
	MaxMonitoredItemsPerSubscription = 1000
	// BrowseBudget is the number of references one Browse or BrowseNext response carries at
	// most, shared among its nodes (at least one each).
	BrowseBudget = 400
	// ResponseBudget is the largest encoded response body sent; a larger one is answered
	// BadResponseTooLarge instead (65,535 bytes per chunk, less the chunk's headers).
	ResponseBudget = 60000
)

// Options configure a Server. Line and Locker are required; the zero value of every other field
// works.
type Options struct {
	// Line is the line served. The number of machines and extra values are read once, in New.
	Line *line.Line
	// Locker guards Line: whoever steps it holds it (pace.Pacer.Locker), so that every sample
	// is one whole tick.
	Locker sync.Locker
	// Interval is how often the server samples the line for changed values, which it then
	// pushes to subscriptions; it is also the MinimumSamplingInterval of every variable. Zero
	// means 100 ms; below 10 ms is an error.
	Interval time.Duration
	// Hosts are host names clients use besides 127.0.0.1, localhost and the listener's host;
	// each gets an endpoint, since gopcua's clients match endpoints by URL.
	Hosts []string
	// Logger receives the server's events, and gopcua's at debug level. Nil discards them.
	Logger *slog.Logger
}

// Server serves a line over OPC UA (security None, anonymous) through gopcua's server package,
// shielded by validating handlers. Its methods are safe for concurrent use.
type Server struct {
	sp       *space
	line     *line.Line
	locker   sync.Locker
	machines int
	interval time.Duration
	hosts    []string
	log      *slog.Logger

	ms        []line.Machine // scratch for sample; only Run's goroutine uses it
	lastTick  uint64
	sampledAt bool

	mu      sync.Mutex
	running bool         // Run is serving
	addr    string       // the listen address, for Restart
	ln      net.Listener // nil while stopped
	b       *backend     // nil while stopped
	conns   map[net.Conn]struct{}
	pending []*ua.NodeID // removed or restored nodes to notify
	wg      sync.WaitGroup
}

// New validates opts and builds the address space; it starts nothing.
func New(opts Options) (*Server, error) {
	if opts.Line == nil || opts.Locker == nil {
		return nil, errors.New("opcua server: options need a line and its locker")
	}
	if opts.Interval == 0 {
		opts.Interval = 100 * time.Millisecond
	}
	if opts.Interval < 10*time.Millisecond {
		return nil, fmt.Errorf("opcua server: interval %v below 10ms", opts.Interval)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts.Locker.Lock()
	cfg := opts.Line.Config()
	opts.Locker.Unlock()
	return &Server{
		sp:       newSpace(cfg.Machines, cfg.ExtraValues, cfg.Step),
		line:     opts.Line,
		locker:   opts.Locker,
		machines: cfg.Machines,
		interval: opts.Interval,
		hosts:    opts.Hosts,
		log:      log,
		ms:       make([]line.Machine, cfg.Machines),
		conns:    map[net.Conn]struct{}{},
	}, nil
}

// EndpointURL returns the endpoint URL of a server listening on addr: "opc.tcp://HOST:PORT".
func EndpointURL(addr net.Addr) string { return "opc.tcp://" + addr.String() }

// NodeCount returns the number of variables served (every machine's Variables and extra values).
func (s *Server) NodeCount() int { return len(s.sp.vars) }

// Run samples the line and serves OPC UA on ln until ctx ends, then closes ln and every
// connection and returns nil. Run must not be called twice at once.
func (s *Server) Run(ctx context.Context, ln net.Listener) error {
	s.sample(time.Now())
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("opcua server: already running")
	}
	s.running, s.addr = true, ln.Addr().String()
	err := s.startLocked(ln)
	s.mu.Unlock()
	if err != nil {
		ln.Close()
		return err
	}
	s.log.Info("opcua serving", "endpoint", EndpointURL(ln.Addr()), "variables", s.NodeCount())

	t := time.NewTicker(s.interval)
	defer t.Stop()
	sec := time.NewTicker(time.Second)
	defer sec.Stop()
	currentTime := ua.NewNumericNodeID(0, id.Server_ServerStatus_CurrentTime)
	for {
		select {
		case <-ctx.Done():
			s.mu.Lock()
			s.stopLocked()
			s.running = false
			s.mu.Unlock()
			s.wg.Wait()
			return nil
		case now := <-t.C:
			changed := s.sample(now)
			s.mu.Lock()
			b, pending := s.b, s.pending
			s.pending = nil
			s.mu.Unlock()
			if b == nil || (len(changed) == 0 && len(pending) == 0) {
				continue
			}
			ids := pending
			for _, v := range changed {
				ids = append(ids, s.sp.nodes[s.sp.vars[v].node].id)
			}
			b.notify(ids, now)
		case now := <-sec.C:
			// Every second, so that a client's heartbeat item sees a change each second.
			s.mu.Lock()
			b := s.b
			s.mu.Unlock()
			if b != nil {
				b.notify([]*ua.NodeID{currentTime}, now)
			}
		}
	}
}

// sample reads the line when it moved and returns the variables whose value changed.
func (s *Server) sample(now time.Time) []int {
	s.locker.Lock()
	tick := s.line.Tick()
	if s.sampledAt && tick == s.lastTick {
		s.locker.Unlock()
		return nil
	}
	for k := range s.machines {
		s.ms[k] = s.line.Snapshot(k + 1)
	}
	s.locker.Unlock()
	s.lastTick, s.sampledAt = tick, true
	return s.sp.update(now, tick, s.ms)
}

// Tick returns the tick of the values served now.
func (s *Server) Tick() uint64 {
	_, t := s.sp.values()
	return t
}

// startLocked starts a fresh gopcua server and serves ln through it. s.mu is held.
func (s *Server) startLocked(ln net.Listener) error {
	b, err := s.newBackend(ln.Addr())
	if err != nil {
		return err
	}
	s.ln, s.b = ln, b
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.accept(ln, b)
	}()
	return nil
}

// stopLocked closes the listener and every connection, and stops the gopcua server: clients see
// their connection reset, as when the process dies. s.mu is held.
func (s *Server) stopLocked() {
	if s.ln == nil {
		return
	}
	s.ln.Close()
	for c := range s.conns {
		c.Close()
	}
	b := s.b
	s.ln, s.b = nil, nil
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		b.stop()
	}()
}

// Stop stops serving: the listener and every connection close, sessions and subscriptions are
// gone; the values keep being sampled. Restart serves again. Stop while stopped does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		s.log.Info("opcua stopped serving", "addr", s.addr)
	}
	s.stopLocked()
}

// Restart stops serving if it is, then serves again on the same address with a fresh server:
// new sessions, subscription ids from 1, as after a process restart. It fails when Run is not
// running or the port was taken meanwhile.
func (s *Server) Restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return errors.New("opcua server: restart while not running")
	}
	s.stopLocked()
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("opcua server: listen again on %s: %w", s.addr, err)
	}
	if err := s.startLocked(ln); err != nil {
		ln.Close()
		return err
	}
	s.log.Info("opcua serving again", "addr", s.addr)
	return nil
}

// Serving reports whether the server accepts connections (between Run's start and its end,
// except while stopped).
func (s *Server) Serving() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ln != nil
}

// RemoveNode removes a node of the line's namespace, e.g. "Line1.M1.Temperature" or
// "ns=2;s=Line1.M1.Temperature": reads answer BadNodeIdUnknown, Browse omits it, new monitored
// items are refused with BadNodeIdUnknown and existing ones receive that status. It reports
// whether the node exists. A folder's variables stay readable by id.
func (s *Server) RemoveNode(node string) bool { return s.setRemoved(node, true) }

// RestoreNode undoes RemoveNode.
func (s *Server) RestoreNode(node string) bool { return s.setRemoved(node, false) }

func (s *Server) setRemoved(node string, gone bool) bool {
	if !s.sp.setRemoved(node, gone) {
		return false
	}
	if i, ok := s.sp.byKey[keyOf(node)]; ok {
		s.mu.Lock()
		s.pending = append(s.pending, s.sp.nodes[i].id)
		s.mu.Unlock()
	}
	s.log.Info("opcua node availability", "node", node, "removed", gone)
	return true
}

// keyOf returns the map key of a node given as "ns=2;s=…" or a bare string id.
func keyOf(node string) string {
	if len(node) > 3 && node[:3] == "ns=" {
		return node
	}
	return ua.NewStringNodeID(NamespaceIndex, node).String()
}

// endpointURLs returns the URL of every host name served on the port of addr.
func (s *Server) endpointURLs(addr net.Addr) []string {
	host, port, _ := net.SplitHostPort(addr.String())
	seen := map[string]bool{}
	var urls []string
	for _, h := range append([]string{host, "127.0.0.1", "localhost"}, s.hosts...) {
		if h == "" || seen[h] {
			continue
		}
		seen[h] = true
		urls = append(urls, "opc.tcp://"+net.JoinHostPort(h, port))
	}
	return urls
}

// portOf returns the port of addr as a number.
func portOf(addr net.Addr) int {
	_, p, _ := net.SplitHostPort(addr.String())
	n, _ := strconv.Atoi(p)
	return n
}
