package watch_test

import (
	"fmt"
	"os"
	"time"

	"github.com/floorlink/floorlink/watch"
)

// A model fed by hand, as Subscribe feeds it from a broker, rendered as plain lines.
func ExampleModel_AppendPlain() {
	start := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	m := watch.New(watch.Options{Start: start})
	m.Expect(watch.Expected{Site: "plant", Area: "body", Line: "line-1", Gateway: "gw-1", Device: "press-1"})
	m.Handle("floorlink/v1/plant/gateway/gw-1/status", []byte(`{"state":"online","session":1}`), start)
	m.Handle("floorlink/v1/plant/body/line-1/press-1/telemetry",
		[]byte(`{"gateway":"gw-1","seq":1,"ts":"2026-11-25T08:00:01.5Z","values":{"parts_total":12,"oil_temp":null},"quality":{"oil_temp":"bad:timeout"}}`),
		start.Add(1600*time.Millisecond))
	os.Stdout.Write(m.AppendPlain(nil, start.Add(2*time.Second)))
	// Output:
	// t=2s gateway=gw-1 site=plant status=online session=1 depth=- file_bytes=- oldest_age=- dropped=- published=- acked=- rate=- stats_age=- event=-
	// t=2s device=press-1 site=plant area=body line=line-1 gateway=gw-1 seq=1 age=0.5s event=- oil_temp=- parts_total=12 quality.oil_temp=bad:timeout
	// t=2s messages=2 undecodable=0 broker=-
}

// NewJSON reads records under a gateway's own mqtt.topic_template.
func ExampleNewJSON() {
	dec, err := watch.NewJSON("plants/{site}/{line}/{source}/{kind}")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(dec.Filters())
	us, _ := dec.Decode(nil, "plants/busan/l2/press-1/kpi", []byte(`{"gateway":"gw-7","values":{"oee":0.8}}`))
	fmt.Println(us[0].Kind, us[0].Site, us[0].Line, us[0].Source, us[0].Gateway, us[0].Values[0].Name, us[0].Values[0].Text)
	// Output:
	// [floorlink/v1/# plants/#]
	// kpi busan l2 press-1 gw-7 oee 0.8
}
