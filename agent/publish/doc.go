// Package publish owns Floorlink's MQTT session: it drains the durable record queue in order,
// encodes each record as the JSON message of the MQTT contract (docs/mqtt.md and the embedded
// JSON Schemas), and advances the queue's acknowledgement cursor only over what the broker has
// acknowledged.
//
// The publisher reads the queue through Source, an interface it declares, so that it needs no
// import of the buffer package and the buffer knows nothing of MQTT.
//
// Caveats, from paho.mqtt.golang v1.5.1's behaviour (shared/research/sparkplug-mqtt.md):
//   - paho's AutoReconnect and ConnectRetry stay off. With them on, tokens of messages in flight
//     when a connection drops can complete without error, and QoS 1 messages are resent from
//     memory before the new session is set up. The publisher makes a new client per connection
//     attempt instead, and on any loss fails the whole window and re-sends it from the cursor.
//   - Delivery is at least once: after a loss, the window in flight and what was acknowledged
//     since the last cursor commit are sent again. Backends de-duplicate by (gateway, epoch, seq).
//   - paho keeps a reference to a published payload until the broker acknowledges it, so each
//     window slot owns its byte slice and reuses it only after its token completed.
package publish
