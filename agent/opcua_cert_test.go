package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/floorlink/floorlink/agent/config"
	"github.com/floorlink/floorlink/agent/record"
	"github.com/floorlink/floorlink/buffer"
	"github.com/floorlink/floorlink/drivers/opcua"
)

// TestAgent_OPCUACertificateExpiring: an application certificate that ends within 30 days is a
// gateway event at start, naming the file, so that someone renews it before the servers refuse
// the gateway.
func TestAgent_OPCUACertificateExpiring(t *testing.T) {
	dir := t.TempDir()
	pkiDir := filepath.Join(dir, "pki")
	p, err := opcua.OpenPKI(pkiDir, "urn:floorlink:gw-cert")
	if err != nil {
		t.Fatal(err)
	}
	// A certificate made long ago: its validity ends in about ten days.
	info, err := p.Renew(time.Now().Add(10*24*time.Hour - 2*365*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !info.ExpiresWithin(time.Now(), opcua.ExpiryWarning) {
		t.Fatalf("test setup: the certificate ends %v, not within 30 days", info)
	}
	path := filepath.Join(dir, "gw.yaml")
	os.WriteFile(path, []byte(fmt.Sprintf(`gateway: {id: gw-cert, site: s, area: a, line: l, data_dir: data}
mqtt: {brokers: ["tcp://127.0.0.1:1"]}
http: {listen: ""}
devices:
  - name: cnc-1
    protocol: opcua
    address: opc.tcp://127.0.0.1:1
    security_policy: Basic256Sha256
    security_mode: SignAndEncrypt
    pki_dir: %q
    tags:
      - {name: spindle, address: "ns=2;s=Spindle", type: float64}
`, pkiDir)), 0o644)
	cfg, err := LoadConfig(path, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	waitFor(t, 10*time.Second, func() error {
		if a.buf.Head() == 0 {
			return fmt.Errorf("nothing stored yet")
		}
		return nil
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	b, err := buffer.OpenReadOnly(filepath.Join(cfg.Gateway.DataDir, BufferFile))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var events []string
	var dec record.Decoder
	var rec record.Record
	b.ReadAfter(0, 1000, func(_ uint64, payload []byte) error {
		if err := dec.Decode(payload, &rec); err != nil || rec.Kind != record.KindEvent {
			return err
		}
		var text []string
		for _, f := range rec.Fields {
			if f.Kind == record.String {
				text = append(text, f.Name+"="+f.Str)
			}
		}
		events = append(events, strings.Join(text, " "))
		return nil
	})
	for _, e := range events {
		if strings.Contains(e, "event=opcua_certificate_expiring") && strings.Contains(e, pkiDir) {
			return
		}
	}
	t.Errorf("no opcua_certificate_expiring event naming %s among %q", pkiDir, events)
}
