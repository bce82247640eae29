package main

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/floorlink/floorlink/cmd/floorlink/floorlinktest"
)

// startPlcsimOPCUA runs plcsim serving OPC UA on a free loopback port and returns the endpoint
// it printed. (cmd/floorlink's tests may import only simtest of the simulators, which has no
// OPC UA.)
func startPlcsimOPCUA(t *testing.T) string {
	t.Helper()
	return floorlinktest.StartPlcsim(t, "opcua", "--opcua", "127.0.0.1:0")
}

// TestOPCUABrowse walks machine 1 of plcsim: the table shows each variable with its UA type,
// access level and value; --yaml gives a tag list that, pasted into a device, validates with
// the driver's checks and keeps every type (the agent's run of it is in e2e).
func TestOPCUABrowse(t *testing.T) {
	endpoint := startPlcsimOPCUA(t)
	code, out, errOut := runCLI("opcua", "browse", endpoint, "--node", "ns=2;s=Line1.M1")
	if code != 0 {
		t.Fatalf("browse: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^NODE ID\s+TYPE\s+ACCESS\s+VALUE\s+PATH$`),
		regexp.MustCompile(`(?m)^ns=2;s=Line1\.M1\.Types\.Double\s+Double\s+read\s+\S+\s+Types/Double$`),
		regexp.MustCompile(`(?m)^ns=2;s=Line1\.M1\.Types\.SByte\s+SByte\s+read\s+-?\d+\s+Types/SByte$`),
		regexp.MustCompile(`(?m)^ns=2;s=Line1\.M1\.StateName\s+String\s+read\s+[a-z]+\s+StateName$`),
		regexp.MustCompile(`(?m)^ns=2;s=Line1\.M1\.Tick\s+UInt32\s+read\s+\d+\s+Tick$`),
		regexp.MustCompile(`(?m)^\d+ variables$`),
	} {
		if !want.MatchString(out) {
			t.Errorf("browse output has no line matching %s:\n%s", want, out)
		}
	}

	code, yamlOut, errOut := runCLI("opcua", "browse", endpoint, "--node", "ns=2;s=Line1.M1", "--yaml")
	if code != 0 {
		t.Fatalf("browse --yaml: exit %d\n%s", code, errOut)
	}
	for _, want := range []string{
		`  - {name: "Types.SByte", address: "ns=2;s=Line1.M1.Types.SByte", type: int8}`,
		`  - {name: "Types.DateTime", address: "ns=2;s=Line1.M1.Types.DateTime", type: datetime}`,
		`  - {name: "Types.ByteString", address: "ns=2;s=Line1.M1.Types.ByteString", type: bytes}`,
		`  - {name: "State", address: "ns=2;s=Line1.M1.State", type: int32} # Enumeration`,
	} {
		if !strings.Contains(yamlOut, want+"\n") {
			t.Errorf("browse --yaml has no line %s:\n%s", want, yamlOut)
		}
	}
	dir := t.TempDir()
	cfg := "gateway: {id: gw-1, site: s, area: a, line: l, data_dir: data}\nmqtt: {brokers: [\"tcp://127.0.0.1:1883\"]}\n" +
		"devices:\n  - name: m1\n    protocol: opcua\n    address: " + endpoint + "\n" + indent(yamlOut, "    ")
	path := filepath.Join(dir, "browsed.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runCLI("validate", path); code != 0 {
		t.Errorf("validate the browsed tags: exit %d\n%s%s\n%s", code, out, errOut, cfg)
	}
}

func indent(s, prefix string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(s, "\n") {
		if l != "" {
			b.WriteString(prefix + l)
		}
	}
	return b.String()
}

// TestOPCUABrowse_Errors: what an integrator gets wrong first.
func TestOPCUABrowse_Errors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unreachable", []string{"opcua", "browse", "opc.tcp://127.0.0.1:1"}, 1, "server unreachable"},
		{"not an endpoint", []string{"opcua", "browse", "http://127.0.0.1:4840"}, 1, "want an endpoint URL opc.tcp://host:port[/path]"},
		{"no endpoint", []string{"opcua", "browse"}, 2, "give the endpoint opc.tcp://HOST:PORT, or -c FILE"},
		{"device without config", []string{"opcua", "browse", "opc.tcp://127.0.0.1:1", "--device", "m1"}, 2, "--device needs -c FILE"},
		{"depth", []string{"opcua", "browse", "opc.tcp://127.0.0.1:1", "--depth", "0"}, 2, "--depth 0: want 1 or more"},
		{"cert without a directory", []string{"opcua", "cert", "show"}, 2, "give -c FILE (the config of the agent) or --pki-dir DIR"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := runCLI(tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.want) {
				t.Errorf("got exit %d %q, want exit %d with %q", code, errOut, tc.code, tc.want)
			}
		})
	}
}

// TestOPCUACert runs show, renew and export on the PKI directory of a config's secured device:
// nothing before the first certificate, then the ApplicationURI of the gateway, the same
// thumbprint on show, and exports in DER and PEM that parse to the certificate shown.
func TestOPCUACert(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "floorlink.yaml")
	if err := os.WriteFile(cfg, []byte(`gateway: {id: gw-7, site: s, area: a, line: l, data_dir: data}
mqtt: {brokers: ["tcp://127.0.0.1:1883"]}
devices:
  - name: plain
    protocol: opcua
    address: opc.tcp://127.0.0.1:4840
    tags: [{name: t, address: "i=2258"}]
  - name: robot
    protocol: opcua
    address: opc.tcp://127.0.0.1:4841
    security_policy: Basic256Sha256
    tags: [{name: t, address: "i=2258"}]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	pki := filepath.Join(dir, "data", "pki")
	code, _, errOut := runCLI("opcua", "cert", "show", "-c", cfg)
	if code != 1 || !strings.Contains(errOut, "no application certificate in "+pki+" yet") {
		t.Fatalf("show before the first certificate: exit %d %q", code, errOut)
	}
	code, out, errOut := runCLI("opcua", "cert", "renew", "-c", cfg)
	if code != 0 || !strings.Contains(out, "application uri: urn:floorlink:gw-7\n") || !strings.Contains(out, "(valid, 729 days left)") {
		t.Fatalf("renew: exit %d\n%s%s", code, out, errOut)
	}
	thumb := regexp.MustCompile(`thumbprint:\s+([0-9A-F]{40})`).FindStringSubmatch(out)
	if thumb == nil {
		t.Fatalf("renew printed no thumbprint:\n%s", out)
	}
	code, out, _ = runCLI("opcua", "cert", "show", "-c", cfg, "--device", "robot")
	if code != 0 || !strings.Contains(out, thumb[1]) || !strings.Contains(out, filepath.Join(pki, "own", "cert.der")) {
		t.Errorf("show: exit %d, want thumbprint %s and the file under %s:\n%s", code, thumb[1], pki, out)
	}
	der := filepath.Join(dir, "gw-7.der")
	if code, _, errOut := runCLI("opcua", "cert", "export", "-c", cfg, "--format", "der", "--out", der); code != 0 {
		t.Fatalf("export der: exit %d %s", code, errOut)
	}
	b, err := os.ReadFile(der)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(b)
	if err != nil || len(c.URIs) != 1 || c.URIs[0].String() != "urn:floorlink:gw-7" {
		t.Fatalf("exported DER: %v, URIs %v, want urn:floorlink:gw-7", err, c.URIs)
	}
	code, out, _ = runCLI("opcua", "cert", "export", "-c", cfg)
	blk, _ := pem.Decode([]byte(out))
	if code != 0 || blk == nil || blk.Type != "CERTIFICATE" || string(blk.Bytes) != string(b) {
		t.Errorf("export pem: exit %d, want the same certificate as PEM:\n%s", code, out)
	}
}

// TestValidate_OPCUADriverProblems: the opcua driver's own checks (node ids, security mode
// against policy, the user of auth username) come back from validate placed at file:line:col,
// and validate leaves the data dir alone (the driver's New would create the PKI directory).
func TestValidate_OPCUADriverProblems(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "floorlink.yaml")
	if err := os.WriteFile(cfg, []byte(`gateway: {id: gw-1, site: s, area: a, line: l, data_dir: data}
mqtt: {brokers: ["tcp://127.0.0.1:1883"]}
devices:
  - name: m1
    protocol: opcua
    address: opc.tcp://127.0.0.1:4840
    security_policy: Basic256Sha256
    security_mode: None
    auth: username
    tags:
      - {name: a, address: "ns=2;x=Line1", type: int32}
      - {name: b, address: "ns=2;s=Line1.M1.Tick", type: bcd16}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCLI("validate", cfg)
	if code != 2 {
		t.Fatalf("got exit %d, want 2:\n%s", code, errOut)
	}
	for _, want := range []string{
		cfg + ":8:20: devices[0].security_mode: None with security policy Basic256Sha256",
		cfg + ":4:5: devices[0].username: empty: auth username needs a username",
		cfg + ":11:28: devices[0].tags[0].address:",
		cfg + ":12:58: devices[0].tags[1].type: \"bcd16\": an opcua tag is one of bool, int8",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("validate output lacks %q:\n%s", want, errOut)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); !os.IsNotExist(err) {
		t.Errorf("validate created %s (err %v)", filepath.Join(dir, "data"), err)
	}
}
