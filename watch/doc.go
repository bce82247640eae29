// Package watch is the live view of what Floorlink gateways publish to a broker: sites, their
// gateways' status and stats, lines, devices with their latest values and quality, assets with
// their KPIs, and each source's last event. `floorlink watch` and floorlink-demo show it.
//
// It reads the MQTT contract (docs/mqtt.md), not the agent: it imports nothing of ours, and
// what it shows is what reached the broker.
//
// The parts:
//   - A Decoder turns one message into Updates. JSON reads the JSON contract under a topic
//     template. Sparkplug B (issue 8) will be a second Decoder producing the same Updates, so
//     the Model and its renderings stay as they are.
//   - A Model holds the latest of everything, fed by Handle (decode, then Apply). It is pure
//     state: the time of each message and of each rendering is a parameter, so the renderings
//     are testable to the byte (testdata/*.golden, rewritten by go test -update).
//   - AppendPlain renders one refresh as stable key=value lines, for a pipe; AppendFrame
//     renders one terminal frame that replaces the previous one. Run draws either once a
//     second.
//   - Subscribe feeds a Model from a broker over paho, reconnecting on its own.
//
// Caveats: the view holds the last value of every tag it has seen, for as long as it runs
// (memory grows with the number of distinct tags, not with time). A source is placed by its
// topic; a device moved to another line shows in both until the view restarts. Messages
// arrive at QoS 0 to the view: a live view may miss one, and the next one repairs it.
package watch
