package config_test

import (
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/floorlink/floorlink/agent/config"
)

// The file has three problems of its own; the driver, which owns the tag types, finds a fourth
// that the agent places with Problemf. All four come out together, in position order.
func ExampleParse() {
	data := []byte(`gateway: {id: gw-1, site: changwon, area: body, line: press-1}
mqtt:
  brokers: [tcp://127.0.0.1:1883]
  keepalive: 30s
devices:
  - name: press-1
    protocol: modbus-tcp
    address: 127.0.0.1:5020
    poll_interval: 1 sec
    tags:
      - {name: door, address: 00001, type: bool}
      - {name: temp, address: "30001", type: flaot32}
`)
	f, err := config.Parse("line1.yaml", data, config.Options{})
	var ce *config.Error
	if !errors.As(err, &ce) {
		fmt.Println("unexpected:", err)
		return
	}
	// f is usable despite the problems: the parts check what they own.
	driverSays := f.Problemf("devices[0].tags[1].type", "unknown type %q (want one of bool, int16, uint16, int32, uint32, float32)", f.Devices[0].Tags[1].Type)
	fmt.Println(config.Join(f, append(ce.Problems, driverSays)...))
	// Output:
	// line1.yaml:4:3: mqtt.keepalive: unknown key (did you mean keep_alive?)
	// line1.yaml:9:20: devices[0].poll_interval: want a duration like 500ms or 2s, got "1 sec" (no spaces: 1m30s)
	// line1.yaml:11:31: devices[0].tags[0].address: write "00001" in quotes: YAML reads an unquoted 00001 as the number 1, and the leading zeros that select the register table are lost
	// line1.yaml:12:46: devices[0].tags[1].type: unknown type "flaot32" (want one of bool, int16, uint16, int32, uint32, float32)
}

// A password from the environment is a Secret: printing, logging or encoding the File shows
// [redacted]; Reveal gives the value to the MQTT client, and nothing else should call it.
func ExampleSecret() {
	opts := config.Options{LookupEnv: func(name string) (string, bool) { return "hunter2", name == "MQTT_PASSWORD" }}
	f, err := config.Parse("line1.yaml", []byte(`
gateway: {id: gw-1, site: changwon, area: body, line: press-1}
mqtt:
  brokers: [tcp://127.0.0.1:1883]
  password: ${MQTT_PASSWORD}
`), opts)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%v %q\n", f.MQTT.Password, f.MQTT.Password)
	log := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	log.Info("connecting", "password", f.MQTT.Password)
	fmt.Println(len(f.MQTT.Password.Reveal()))
	// Output:
	// [redacted] [redacted]
	// level=INFO msg=connecting password=[redacted]
	// 7
}

// Buses groups devices that share a connection, for one driver per bus.
func ExampleFile_Buses() {
	f, err := config.Parse("line1.yaml", []byte(`
gateway: {id: gw-1, site: changwon, area: paint, line: oven}
mqtt: {brokers: ["tcp://127.0.0.1:1883"]}
devices:
  - {name: oven-1, protocol: modbus-rtu, address: /dev/ttyUSB0, unit_id: 1, tags: [{name: t, address: "30001", type: int16}]}
  - {name: press-1, protocol: modbus-tcp, address: "10.0.0.5:502", tags: [{name: s, address: "40001", type: uint16}]}
  - {name: oven-2, protocol: modbus-rtu, address: /dev/ttyUSB0, unit_id: 2, tags: [{name: t, address: "30001", type: int16}]}
`), config.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, b := range f.Buses() {
		fmt.Println(b.Protocol, b.Address, b.Devices)
	}
	// Output:
	// modbus-rtu /dev/ttyUSB0 [0 2]
	// modbus-tcp 10.0.0.5:502 [1]
}
