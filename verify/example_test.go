package verify_test

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/floorlink/floorlink/verify"
)

func ExampleTracker() {
	tr := verify.NewTracker(verify.TrackerOptions{FromStart: true})
	at := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	for _, seq := range []int{1, 2, 4, 4, 5, 3} {
		payload := fmt.Sprintf(`{"gateway":"gw-press-01","epoch":"8f14e45fceea167a","seq":%d,`+
			`"ts":"2026-11-25T08:00:00.000Z","historical":false,"values":{"parts_total":%d}}`, seq, 1000+seq)
		tr.Observe("floorlink/v1/plant/press-shop/line-1/press-01/telemetry", []byte(payload), at)
		at = at.Add(100 * time.Millisecond)
	}
	tr.Expect("gw-press-01", "8f14e45fceea167a", 7) // the gateway's buffer head, read once it stopped
	r := tr.Report()
	_ = r.WriteText(os.Stdout)
	fmt.Println(r.OK(), r.Problems())
	// Output:
	// gateway gw-press-01 epoch 8f14e45fceea167a: FAIL
	//   seq 1-5 received, expected through 7
	//   6 messages, 5 distinct seqs, 1 duplicate, 1 out of order, 0 historical
	//   first message 2026-11-25T08:00:00.000Z, last 2026-11-25T08:00:00.500Z
	//   gaps: 2 seqs missing in 1 range: 6-7
	// FAIL
	// false [gateway gw-press-01 epoch 8f14e45fceea167a: 2 seqs missing in 1 gap: 6-7]
}

// ExampleRun is what `floorlink verify` does: subscribe until interrupted, then report.
func ExampleRun() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	tr := verify.NewTracker(verify.TrackerOptions{})
	err := verify.Run(ctx, verify.Options{
		Brokers:    []string{"tcp://broker.plant.example:1883"},
		ClientID:   "floorlink-verify-qa",
		Persistent: true,
	}, tr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	r := tr.Report()
	_ = r.WriteText(os.Stdout)
	if !r.OK() {
		os.Exit(1)
	}
}
