package pkgtest

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"

	"github.com/floorlink/floorlink/agent/publish/mqtttest"
	"github.com/floorlink/floorlink/buffer"
	"github.com/floorlink/floorlink/cmd/floorlink/floorlinktest"
)

// fixtureDir holds the buffer files older releases wrote (see buffer/testdata/gen).
const fixtureDir = "../../../buffer/testdata"

// format1 is buffer/testdata/format1.json.
type format1 struct {
	Epoch   string `json:"epoch"`
	Head    uint64 `json:"head"`
	Cursor  uint64 `json:"cursor"`
	Entries []struct {
		Seq     uint64         `json:"seq"`
		Kind    string         `json:"kind"`
		Source  string         `json:"source"`
		TS      string         `json:"ts"`
		Values  map[string]any `json:"values"`
		Quality map[string]any `json:"quality"`
	} `json:"entries"`
}

// migrationConfig writes a config with no devices (the agent only delivers what it holds),
// the data directory holding a copy of the fixture, and returns its path.
func migrationConfig(t *testing.T, fixture, brokerURL string) (cfg, dataDir string) {
	t.Helper()
	dir := t.TempDir()
	dataDir = filepath.Join(dir, "data")
	if err := os.Mkdir(dataDir, 0o750); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(fixtureDir, fixture))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dataDir, "buffer.db"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg = filepath.Join(dir, "floorlink.yaml")
	// The fixture's records are from 2024: max_age must not drop them as too old.
	err = os.WriteFile(cfg, []byte(fmt.Sprintf(`gateway: {id: gw-migrate, site: plant, area: body, line: line-1, data_dir: %q}
mqtt:
  brokers: [%q]
  shutdown_grace: 2s
buffer: {max_age: 876000h}
http: {listen: ""}
`, dataDir, brokerURL)), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, dataDir
}

// TestMigration_Format1FileDelivered: the agent built from this tree, started on a buffer file
// that format_version 1 wrote, delivers every record that file was holding, exactly as stored
// (epoch, seq, time, values, quality), marked historical, and none it had already delivered;
// it continues the old file's session counter, and ends with everything acknowledged.
func TestMigration_Format1FileDelivered(t *testing.T) {
	var want format1
	js, err := os.ReadFile(filepath.Join(fixtureDir, "format1.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(js, &want); err != nil {
		t.Fatal(err)
	}
	broker := mqtttest.StartBroker(t, mqtttest.BrokerOptions{})
	sub := mqtttest.Subscribe(t, broker.URL(), "floorlink/#")
	cfg, dataDir := migrationConfig(t, "format1.db", broker.URL())

	agent := floorlinktest.Start(t, agentBin, cfg)
	type payload struct {
		Gateway    string         `json:"gateway"`
		Epoch      string         `json:"epoch"`
		Seq        uint64         `json:"seq"`
		TS         string         `json:"ts"`
		Historical bool           `json:"historical"`
		Values     map[string]any `json:"values"`
		Quality    map[string]any `json:"quality"`
		State      string         `json:"state"`
		Session    uint64         `json:"session"`
	}
	statusTopic := "floorlink/v1/plant/gateway/gw-migrate/status"
	var got map[uint64]payload
	var session uint64
	sub.WaitFor(t, 30*time.Second, func(msgs []mqtttest.Message) error {
		got = map[uint64]payload{}
		session = 0
		for _, m := range msgs {
			var p payload
			if err := json.Unmarshal(m.Payload, &p); err != nil {
				return fmt.Errorf("%s: %v: %s", m.Topic, err, m.Payload)
			}
			if m.Topic == statusTopic && p.State == "online" {
				session = p.Session
			}
			if p.Epoch == want.Epoch {
				got[p.Seq] = p
			}
		}
		for _, e := range want.Entries {
			if _, ok := got[e.Seq]; !ok {
				return fmt.Errorf("seq %d of the old file not delivered yet (%d messages)", e.Seq, len(msgs))
			}
		}
		return nil
	})
	t.Logf("delivered %d records of the old file; session %d", len(got), session)
	for _, e := range want.Entries {
		p := got[e.Seq]
		wantP := payload{Gateway: "gw-migrate", Epoch: want.Epoch, Seq: e.Seq, TS: e.TS, Historical: true,
			Values: e.Values, Quality: e.Quality}
		// JSON numbers decode as float64 on both sides; compare as decoded.
		if diff := cmp.Diff(roundTrip(t, wantP), roundTrip(t, p)); diff != "" {
			t.Errorf("seq %d (-want +got):\n%s", e.Seq, diff)
		}
	}
	for seq := range got {
		if seq <= want.Cursor {
			t.Errorf("seq %d was delivered again: the old file had it acknowledged (cursor %d)", seq, want.Cursor)
		}
	}
	if session != 4 {
		t.Errorf("status session %d, want 4: the old file's counter was at 3", session)
	}

	if code := agent.Stop(syscall.SIGTERM, 20*time.Second); code != 0 {
		t.Fatalf("agent exit %d", code)
	}
	b, err := buffer.OpenReadOnly(filepath.Join(dataDir, "buffer.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Epoch() != want.Epoch || b.Cursor() < want.Head || b.Cursor() != b.Head() {
		t.Errorf("after the run: epoch %s head %d cursor %d; want epoch %s, all acknowledged past %d",
			b.Epoch(), b.Head(), b.Cursor(), want.Epoch, want.Head)
	}
}

func roundTrip(t *testing.T, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "state")
	delete(m, "session")
	return m
}

// TestRollback_NewerFormatRefused: an older binary on a file a newer one wrote (here: this
// binary on a format_version it does not know) exits 1 naming the file and both versions, and
// leaves the file's bytes as they were, so that reinstalling the newer release picks it up.
func TestRollback_NewerFormatRefused(t *testing.T) {
	cfg, dataDir := migrationConfig(t, "format1.db", "tcp://127.0.0.1:1")
	path := filepath.Join(dataDir, "buffer.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("meta")).Put([]byte("format_version"), binary.BigEndian.AppendUint64(nil, 99))
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	before := readFile(t, path)

	cmd := exec.Command(agentBin, "run", "-c", cfg)
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 {
		t.Fatalf("floorlink run on a newer file: %v, want exit 1\n%s", err, out)
	}
	for _, s := range []string{path, "format_version 99", "up to 1"} {
		if !strings.Contains(string(out), s) {
			t.Errorf("output does not say %q:\n%s", s, out)
		}
	}
	if readFile(t, path) != before {
		t.Error("the refused file was changed")
	}
	entries, err := os.ReadDir(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("data dir holds %d files, want the buffer file alone (nothing moved aside)", len(entries))
	}
}
