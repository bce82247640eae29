package perf_test

// End-to-end throughput (issue 4, acceptance 5): 20 devices × 500 uint16 tags (plus each
// device's tick) polled every 100 ms, 100,200 samples/s, from plcsim to Mosquitto.
//
//	go test -run 'TestThroughput_ZeroLoss' -count 1 -v ./cmd/floorlink/perf/
//	go test -run '^$' -bench 'EndToEnd_100kSamples' -benchtime 1x -count 1 -v ./cmd/floorlink/perf/
//
// Targets of the benchmark (reported, never asserted: a loaded machine would flake): at most
// 0.5 core and 60 MB of anonymous RSS for the agent.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/floorlink/floorlink/agent/publish/mqtttest"
	"github.com/floorlink/floorlink/buffer"
	"github.com/floorlink/floorlink/simulators/simtest"
)

const (
	wideMachines = 20
	wideTags     = 500 // extra registers per machine, tags r000..r499
	// perfPrefix is the topic root of the gateway these tests configure (site "perf").
	perfPrefix = "floorlink/v1/perf/"
	// maxReadLag bounds, in ticks of 100 ms, how long after the cycle's tick read (registers 1-2)
	// its later reads of the extra registers may come: they follow it within the same cycle.
	maxReadLag = 10
)

// wideConfig is the agent's config for the wide line: device mNN is unit NN with the tick
// (holding 1-2) and registers 100..599 as uint16 tags r000..r499; no deadband, so every tag is
// in every record.
func wideConfig(dataDir, brokerURL string, modbusAddrs []string, httpListen string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `gateway: {id: gw-perf, site: perf, area: hall, line: wide, data_dir: %q}
mqtt:
  brokers: [%q]
  stats_interval: 1s
  shutdown_grace: 10s
http: {listen: %q}
devices:
`, dataDir, brokerURL, httpListen)
	for k := 1; k <= wideMachines; k++ {
		fmt.Fprintf(&b, "  - name: m%02d\n    protocol: modbus-tcp\n    address: %q\n    unit_id: %d\n"+
			"    poll_interval: 100ms\n    timeout: 2s\n    tags:\n      - {name: tick, address: \"40002\", type: uint32}\n",
			k, modbusAddrs[k-1], k)
		for i := range wideTags {
			// Holding register 100+i is reference 40101+i.
			fmt.Fprintf(&b, "      - {name: r%03d, address: \"%d\", type: uint16}\n", i, 40001+simtest.HoldingExtra+i)
		}
	}
	return b.String()
}

// subscribe connects a QoS 1 subscriber with a clean session to url and hands every message on
// filter to handle, from paho's goroutine, one at a time. It disconnects at cleanup.
func subscribe(tb testing.TB, url, filter string, handle func(topic string, payload []byte, at time.Time)) {
	tb.Helper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).
		SetClientID(fmt.Sprintf("perf-sub-%d", time.Now().UnixNano())).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).SetOrderMatters(true).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) { tb.Errorf("subscriber lost its connection: %v", err) }))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		tb.Fatalf("subscriber connect to %s: %v", url, tok.Error())
	}
	tb.Cleanup(func() { c.Disconnect(100) })
	tok := c.Subscribe(filter, 1, func(_ mqtt.Client, m mqtt.Message) { handle(m.Topic(), m.Payload(), time.Now()) })
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		tb.Fatalf("subscribe %q: %v", filter, tok.Error())
	}
}

// checker verifies every message of the wide line as it arrives and keeps only what the final
// checks need, so a long run does not hold its messages.
type checker struct {
	names []string // r000..r499

	mu        sync.Mutex
	seqs      map[uint64]int // arrivals per seq, every buffered topic
	maxSeq    uint64
	epochs    map[string]bool
	ticks     []map[uint32]bool // per machine (index k-1): tick values delivered
	arrivals  []time.Time       // first arrival of each telemetry record
	problems  []string          // the first few
	nProblems int
	nulls     int
	offline   bool
	stats     string // the last gateway stats payload
}

func newChecker() *checker {
	c := &checker{seqs: map[uint64]int{}, epochs: map[string]bool{}, ticks: make([]map[uint32]bool, wideMachines)}
	for i := range wideTags {
		c.names = append(c.names, fmt.Sprintf("r%03d", i))
	}
	for k := range c.ticks {
		c.ticks[k] = map[uint32]bool{}
	}
	return c
}

func (c *checker) problemf(format string, args ...any) {
	c.nProblems++
	if len(c.problems) < 10 {
		c.problems = append(c.problems, fmt.Sprintf(format, args...))
	}
}

type wideMessage struct {
	Gateway string                     `json:"gateway"`
	Epoch   string                     `json:"epoch"`
	Seq     uint64                     `json:"seq"`
	Values  map[string]json.RawMessage `json:"values"`
	Quality map[string]string          `json:"quality"`
}

func (c *checker) handle(topic string, payload []byte, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rest, ok := strings.CutPrefix(topic, perfPrefix)
	if !ok {
		c.problemf("message on %s", topic)
		return
	}
	switch {
	case strings.HasPrefix(rest, "gateway/"):
		if strings.HasSuffix(rest, "/stats") {
			c.stats = string(payload)
		} else if strings.HasSuffix(rest, "/status") && bytes.HasPrefix(payload, []byte(`{"state":"offline"`)) {
			c.offline = true
		}
		return
	}
	var m wideMessage
	if err := json.Unmarshal(payload, &m); err != nil {
		c.problemf("%s: %v", topic, err)
		return
	}
	c.epochs[m.Epoch] = true
	c.seqs[m.Seq]++
	c.maxSeq = max(c.maxSeq, m.Seq)
	if c.seqs[m.Seq] > 1 || !strings.HasSuffix(rest, "/telemetry") {
		return // a re-send, checked the first time; or an event (connected), counted by seq only
	}
	c.arrivals = append(c.arrivals, at)
	var k int
	if _, err := fmt.Sscanf(strings.Split(rest, "/")[2], "m%d", &k); err != nil || k < 1 || k > wideMachines {
		c.problemf("seq %d: telemetry of an unknown device on %s", m.Seq, topic)
		return
	}
	if len(m.Quality) > 0 {
		c.nulls += len(m.Quality)
		c.problemf("seq %d (m%02d): tags of bad or uncertain quality: %v", m.Seq, k, m.Quality)
		return
	}
	if len(m.Values) != wideTags+1 {
		c.problemf("seq %d (m%02d): %d values, want %d", m.Seq, k, len(m.Values), wideTags+1)
		return
	}
	tick, err := strconv.ParseUint(string(m.Values["tick"]), 10, 32)
	if err != nil {
		c.problemf("seq %d (m%02d): tick %s: %v", m.Seq, k, m.Values["tick"], err)
		return
	}
	c.ticks[k-1][uint32(tick)] = true
	// Register 100+i holds (i mod 256)<<8 | (tick mod 256) (simulators/README.md): the high byte
	// proves the value is the tag's own register, the low byte the tick its read saw, which is
	// the cycle's tick or a little later, never earlier, and never going back within the cycle
	// (the driver reads in address order).
	var prevLag uint8
	for i, name := range c.names {
		v, err := strconv.ParseUint(string(m.Values[name]), 10, 16)
		if err != nil {
			c.problemf("seq %d (m%02d tick %d): %s = %s: %v", m.Seq, k, tick, name, m.Values[name], err)
			return
		}
		if hi := int(v >> 8); hi != i&0xff {
			c.problemf("seq %d (m%02d tick %d): %s = %#04x holds register %d's index byte %#02x, want %#02x (shifted)",
				m.Seq, k, tick, name, v, 100+i, hi, i&0xff)
			return
		}
		lag := uint8(v) - uint8(tick)
		if lag > maxReadLag || lag < prevLag {
			c.problemf("seq %d (m%02d tick %d): %s = %#04x was read at tick …%02x: %d ticks after the cycle's tick, after %d for the tags before it",
				m.Seq, k, tick, name, v, uint8(v), lag, prevLag)
			return
		}
		prevLag = lag
	}
}

// telemetryCount returns the number of telemetry records received (first arrivals).
func (c *checker) telemetryCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.arrivals)
}

// perDevice returns the smallest number of distinct ticks delivered for any device.
func (c *checker) perDevice() (least int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	least = -1
	for _, t := range c.ticks {
		if least < 0 || len(t) < least {
			least = len(t)
		}
	}
	return least
}

// throughput is what one run of the wide line measured.
type throughput struct {
	window         time.Duration // the measured interval
	records        int           // telemetry records that arrived in it
	samplesPerSec  float64
	cores          float64
	startup        memory // peaks from the start to a quarter into the interval (config load, connects)
	last, peak     memory // at the end of the interval; peaks over its last three quarters
	startupHeap    heap   // gctrace before the interval
	heap           heap   // gctrace from the interval on
	maxSeq         uint64
	duplicates     int
	ticksChecked   int // served tick reads found delivered
	telemetryTotal int
	statusRequests int // /api/v1/status requests answered during the window
	statusBytes    int // size of one status document
}

// runWide runs the wide line for warmup plus window, stops the agent and proves that nothing was
// lost: seq gap-free and equal to the buffer's head, the buffer fully acknowledged, every tick
// read the simulator served delivered, every value consistent with the register formula.
func runWide(tb testing.TB, window time.Duration) throughput {
	tb.Helper()
	return runWideWith(tb, window, 0)
}

// runWideWith is runWide with statusClients goroutines reading /api/v1/status in a loop during
// the measured window, as open status pages and monitoring would.
func runWideWith(tb testing.TB, window time.Duration, statusClients int) throughput {
	tb.Helper()
	dir := tb.TempDir()
	dataDir := filepath.Join(dir, "data")
	sim := simtest.Start(tb, simtest.Options{Line: simtest.LineConfig{Seed: 1, Machines: wideMachines, ExtraValues: wideTags}})
	broker := mqtttest.StartBroker(tb, mqtttest.BrokerOptions{})
	chk := newChecker()
	subscribe(tb, broker.URL(), perfPrefix+"#", chk.handle)
	cfgPath := filepath.Join(dir, "floorlink.yaml")
	httpListen := ""
	if statusClients > 0 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		httpListen = ln.Addr().String()
		ln.Close()
	}
	// Twenty PLCs have twenty addresses: a loopback proxy per device gives each its own
	// connection to the one simulator, as separate PLCs would (devices on one address share a
	// connection and are polled in turn, as behind a gateway).
	addrs := make([]string, wideMachines)
	for k := range addrs {
		addrs[k] = mqtttest.StartProxy(tb, sim.ModbusAddr()).Addr()
	}
	if err := os.WriteFile(cfgPath, []byte(wideConfig(dataDir, broker.URL(), addrs, httpListen)), 0o644); err != nil {
		tb.Fatal(err)
	}
	a := startAgent(tb, cfgPath)
	samp := startSampler(a.PID(), 200*time.Millisecond)
	defer samp.finish()

	// Warm up: every device connected and delivering.
	waitFor(tb, 60*time.Second, func() error {
		if a.exited() {
			tb.Fatalf("agent exited early")
		}
		if n := chk.perDevice(); n < 20 {
			return fmt.Errorf("a device has delivered %d cycles, waiting for 20", n)
		}
		return nil
	})
	var r throughput
	cpu0, err := procCPU(a.PID())
	if err != nil {
		tb.Fatal(err)
	}
	t0, rec0 := time.Now(), chk.telemetryCount()
	stopClients := make(chan struct{})
	var clients sync.WaitGroup
	var served, size atomic.Int64
	for range statusClients {
		clients.Add(1)
		go func() {
			defer clients.Done()
			for {
				select {
				case <-stopClients:
					return
				default:
				}
				resp, err := http.Get("http://" + httpListen + "/api/v1/status")
				if err != nil {
					continue
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					served.Add(1)
					size.Store(n)
				}
			}
		}()
	}
	// The measured run itself, not a wait for a result. Memory peaks count from a quarter into
	// it: the runtime returns the heap of loading a 10,000-tag config to the OS over seconds.
	for i, d := range []time.Duration{window / 4, window - window/4} {
		select {
		case <-time.After(d):
		case <-a.Done():
			tb.Fatalf("agent exited during the run")
		}
		if i == 0 {
			r.startup = samp.resetPeak()
		}
	}
	cpu1, err := procCPU(a.PID())
	if err != nil {
		tb.Fatal(err)
	}
	t1, rec1 := time.Now(), chk.telemetryCount()
	close(stopClients)
	clients.Wait()
	r.statusRequests, r.statusBytes = int(served.Load()), int(size.Load())
	r.last, r.peak = samp.finish()
	r.window = t1.Sub(t0)
	r.records = rec1 - rec0
	r.samplesPerSec = float64(r.records*(wideTags+1)) / r.window.Seconds()
	r.cores = (cpu1 - cpu0).Seconds() / r.window.Seconds()

	if code := a.stop(30 * time.Second); code != 0 {
		tb.Fatalf("agent exit code %d after SIGTERM, want 0", code)
	}
	// The offline status comes after the last record the agent published.
	waitFor(tb, 30*time.Second, func() error {
		chk.mu.Lock()
		defer chk.mu.Unlock()
		if !chk.offline {
			return fmt.Errorf("no offline status yet")
		}
		return nil
	})
	r.startupHeap, r.heap = a.goHeap(t0.Sub(a.started))

	chk.mu.Lock()
	defer chk.mu.Unlock()
	if chk.nProblems > 0 {
		tb.Fatalf("%d messages failed the checks; the first:\n%s", chk.nProblems, strings.Join(chk.problems, "\n"))
	}
	if len(chk.epochs) != 1 {
		tb.Fatalf("messages carry %d epochs, want 1: %v", len(chk.epochs), chk.epochs)
	}
	r.maxSeq = chk.maxSeq
	var missing []uint64
	for s := uint64(1); s <= chk.maxSeq; s++ {
		switch n := chk.seqs[s]; {
		case n == 0:
			missing = append(missing, s)
		case n > 1:
			r.duplicates += n - 1
		}
	}
	if len(missing) > 0 {
		tb.Fatalf("seq has holes: %d of 1..%d missing, first %v", len(missing), chk.maxSeq, missing[:min(10, len(missing))])
	}
	// Every record the agent stored was delivered and acknowledged.
	buf, err := buffer.OpenReadOnly(filepath.Join(dataDir, "buffer.db"))
	if err != nil {
		tb.Fatalf("open the agent's buffer: %v", err)
	}
	head, cursor := buf.Head(), buf.Cursor()
	buf.Close()
	if head != chk.maxSeq || cursor != head {
		tb.Fatalf("buffer head %d, cursor %d; subscriber saw seq 1..%d: want all three equal", head, cursor, chk.maxSeq)
	}
	// Every tick the simulator served (holding 1-2) arrived, up to the last one delivered: the
	// ones after it were read while the agent shut down.
	for k := 1; k <= wideMachines; k++ {
		delivered := chk.ticks[k-1]
		var last uint32
		for tk := range delivered {
			last = max(last, tk)
		}
		var lost []uint32
		for _, rd := range sim.TickReads(k) {
			if rd.Tick > last {
				continue
			}
			r.ticksChecked++
			if !delivered[rd.Tick] {
				lost = append(lost, rd.Tick)
			}
		}
		if len(lost) > 0 {
			slices.Sort(lost)
			tb.Fatalf("device m%02d: %d served tick reads never arrived, first %v", k, len(lost), lost[:min(10, len(lost))])
		}
	}
	r.telemetryTotal = len(chk.arrivals)
	tb.Logf("last gateway stats: %s", chk.stats)
	return r
}

func (r throughput) log(tb testing.TB) {
	tb.Helper()
	tb.Logf("zero loss: seq 1..%d gap-free (%d duplicates), buffer head = cursor = %d, %d telemetry records, %d served tick reads all delivered, every value consistent",
		r.maxSeq, r.duplicates, r.maxSeq, r.telemetryTotal, r.ticksChecked)
	tb.Logf("over %v: %d records, %.0f samples/s (target 100,000); agent CPU %.3f cores (target ≤ 0.5)",
		r.window.Round(time.Millisecond), r.records, r.samplesPerSec, r.cores)
	tb.Logf("agent memory in the interval: RssAnon %.1f MiB at the end, peak %.1f MiB over its last 3/4 (target ≤ 60 MB); VmRSS %.1f MiB, RssFile %.1f MiB; Go heap (gctrace) peak %d MB, live ≤ %d MB, %d GCs",
		mib(r.last.RssAnon), mib(r.peak.RssAnon), mib(r.last.VmRSS), mib(r.last.RssFile), r.heap.PeakMB, r.heap.LiveMB, r.heap.GCs)
	tb.Logf("agent memory at startup (config load, connects, warm-up): RssAnon peak %.1f MiB, Go heap peak %d MB, live ≤ %d MB, %d GCs; VmHWM over the whole run %.1f MiB",
		mib(r.startup.RssAnon), r.startupHeap.PeakMB, r.startupHeap.LiveMB, r.startupHeap.GCs, mib(max(r.peak.VmHWM, r.startup.VmHWM)))
}

// TestThroughput_ZeroLoss runs 100,200 samples/s through the agent for 20 s and proves that
// nothing was lost or altered. CPU and memory are logged, not asserted.
func TestThroughput_ZeroLoss(t *testing.T) {
	r := runWide(t, 20*time.Second)
	r.log(t)
	// A sanity bound against a run that measured nothing; not a speed claim.
	if r.records < wideMachines*10 {
		t.Errorf("%d telemetry records in %v, want at least one per device per 2 s", r.records, r.window)
	}
}

// BenchmarkEndToEnd_100kSamples is TestThroughput_ZeroLoss over 60 s, reporting samples/s
// delivered, the agent's cores, anonymous RSS and peak RSS. One iteration is one whole run:
// use -benchtime 1x.
func BenchmarkEndToEnd_100kSamples(b *testing.B) {
	for b.Loop() {
		r := runWide(b, 60*time.Second)
		r.log(b)
		b.ReportMetric(r.samplesPerSec, "samples/s")
		b.ReportMetric(r.cores, "cores")
		b.ReportMetric(mib(r.peak.RssAnon)*1.048576, "RssAnon-MB")
		b.ReportMetric(mib(r.startup.RssAnon)*1.048576, "startup-RssAnon-MB")
		b.ReportMetric(mib(max(r.peak.VmHWM, r.startup.VmHWM))*1.048576, "VmHWM-MB")
		b.ReportMetric(float64(r.heap.PeakMB), "heap-MB")
		b.ReportMetric(float64(r.startupHeap.PeakMB), "startup-heap-MB")
	}
}

// BenchmarkStatus_20Clients runs the wide line (100,200 samples/s) while 20 clients read
// /api/v1/status as fast as they can, and reports whether the poll loops missed a cycle: every
// device must deliver one record per 100 ms of the window. One iteration is one whole run: use
// -benchtime 1x.
func BenchmarkStatus_20Clients(b *testing.B) {
	for b.Loop() {
		r := runWideWith(b, 30*time.Second, 20)
		r.log(b)
		want := float64(wideMachines) * r.window.Seconds() / 0.1
		missed := want - float64(r.records)
		b.Logf("status: %d requests in %v (%.0f/s), %d bytes each; records %d of %.0f expected (missed cycles %.0f, ±1 per device at the window's edges)",
			r.statusRequests, r.window.Round(time.Millisecond), float64(r.statusRequests)/r.window.Seconds(), r.statusBytes, r.records, want, missed)
		b.ReportMetric(float64(r.statusRequests)/r.window.Seconds(), "status-req/s")
		b.ReportMetric(missed, "missed-cycles")
		b.ReportMetric(r.cores, "cores")
		b.ReportMetric(mib(r.peak.RssAnon)*1.048576, "RssAnon-MB")
	}
}
