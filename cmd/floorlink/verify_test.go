package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/floorlink/floorlink/agent/publish/mqtttest"
)

// TestVerify_ReportsGap: a persistent verifier session collects records published while it was
// away; a missing seq fails the run (exit 1) and is named in the report, and a complete stream
// passes (exit 0).
func TestVerify_ReportsGap(t *testing.T) {
	broker := mqtttest.StartBroker(t, mqtttest.BrokerOptions{})
	verifyArgs := func(id string) []string {
		return []string{"verify", "--broker", broker.URL(), "--client-id", id, "--persistent", "--duration", "1500ms", "--interval", "1h"}
	}
	// The first run only creates the broker-side session that queues what comes next.
	for _, id := range []string{"v-gap"} {
		if code, _, errOut := runCLI(verifyArgs(id)...); code != 1 || !strings.Contains(errOut, "no record arrived") {
			t.Fatalf("empty run: exit %d, %s", code, errOut)
		}
	}
	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker.URL()).SetClientID("test-pub"))
	if tok := pub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer pub.Disconnect(100)
	send := func(gw string, seq int) {
		msg := fmt.Sprintf(`{"gateway":%q,"epoch":"0123456789abcdef","seq":%d,"ts":"2026-11-25T08:00:00.000Z","historical":false,"values":{"n":%d}}`, gw, seq, seq)
		tok := pub.Publish("floorlink/v1/s/a/l/press-1/telemetry", 1, false, msg)
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	for _, seq := range []int{1, 2, 4, 5} {
		send("gw-gap", seq)
	}

	code, out, errOut := runCLI(verifyArgs("v-gap")...)
	if code != 1 || !strings.Contains(out, "gateway gw-gap epoch 0123456789abcdef: FAIL") || !strings.Contains(errOut, "1 seq missing") {
		t.Fatalf("gap run: exit %d\n%s%s", code, out, errOut)
	}
	runCLI(verifyArgs("v-ok")...)
	for seq := 1; seq <= 3; seq++ {
		send("gw-ok", seq)
	}
	code, out, errOut = runCLI(append(verifyArgs("v-ok"), "--topic", "floorlink/v1/#")...)
	if code != 0 || !strings.Contains(out, "gateway gw-ok epoch 0123456789abcdef: ok") {
		t.Fatalf("complete stream: exit %d\n%s%s", code, out, errOut)
	}
}

func TestVerify_Usage(t *testing.T) {
	for _, args := range [][]string{{"verify"}, {"verify", "--broker", "tcp://127.0.0.1:1", "--persistent"}, {"verify", "--broker", "tcp://x:1", "--expect", "a:b"}} {
		if code, _, _ := runCLI(args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}
