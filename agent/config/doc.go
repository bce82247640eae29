// Package config turns Floorlink's YAML file into Go types and tells the integrator everything
// that is wrong with it at once, each problem with its file, line, column and field path:
//
//	configs/line1.yaml:14:7: devices[0].tags[3].scale: must not be 0 (it would turn every value into the offset)
//
// It describes the file, not the parts: it imports nothing of Floorlink's. The agent maps a
// File onto each part's options; each part checks its own options (the Modbus driver owns the
// address grammar and the data types) and names the field it rejects, and the agent places that
// problem with File.Pos or File.Problemf and reports it together with the file's own problems
// through Join.
//
// # Decoding by walking the AST
//
// The file is parsed into goccy/go-yaml's syntax tree and walked by hand, not decoded into
// structs. Struct decoding stops at the first type error and reports unknown keys in map order;
// the walk keeps going, records every problem with the position of the offending key or value,
// and leaves a wrong field at its zero value or default. Parse therefore returns a File
// whenever the YAML itself is valid, so the caller can run the parts' checks as well. Only a
// YAML syntax error stops the walk before it starts; it is the one problem reported then.
//
// Keys are strict: an unknown key is a problem, with a did-you-mean suggestion (edit distance,
// case and separator folding, and names from other tools such as Telegraf's slave_id), and a
// duplicate key is a problem at its second occurrence. A key with no value (`key:` or `~`) is
// the same as a missing key. Anchors, aliases, merge keys and explicit tags (!!str) are refused
// with a problem each: an alias would make one mistake appear under several paths, and
// expanding aliases is how a small file decodes into a huge one. Generate repetitive files
// instead. A file holds one YAML document; an empty file, or one with only comments, is a
// problem.
//
// Values are decoded from the text as written, so a string field keeps "007" as written, but
// an unquoted value that another YAML reader would turn into a different value (00001, 0x10,
// 1.10, true) is refused in a string field with advice to quote it: a Modbus address "00001"
// read as the number 1 selects another register table. A plain decimal integer, such as an
// unquoted address 40001 or `line: 3`, is taken as its digits.
//
// # Positions
//
// Lines and columns are 1-based and count characters, not bytes. A field's position is its
// value when the value is a scalar, its key when the value is a mapping or a list, and the item
// itself (its first key, or its dash when it is empty) for a list item. A problem with a missing
// key is placed at the mapping that lacks it. File.Pos answers for any field path, falling back
// to the nearest ancestor the file holds.
//
// # Environment variables
//
// ${NAME} in a scalar value is replaced by the variable's value after parsing, so a variable can
// never inject YAML structure; keys are never expanded. ${NAME:-default} uses default when NAME
// is unset or empty; "$$" is a literal "$"; any other "$" is literal too, so "pa$word" needs no
// escape. An unset variable is a problem at the scalar naming the variable. Expanded text is
// then decoded like written text: `unit_id: ${UNIT}` is an integer. A problem with a value that
// came from the environment names the variable ("the value of ${MQTT_PORT}") and never echoes
// the value, which may be secret.
//
// # Secrets
//
// mqtt.password (or the file named by mqtt.password_file) is a Secret: every way of printing or
// encoding it yields "[redacted]", and only Secret.Reveal gives the value. Problems never show a
// secret, whatever field it was put in by mistake.
//
// # Defaults
//
// Defaults live in one table (defaults.go) with a one-line description and the allowed values
// of every key: the decoder applies a default by decoding the table's text as if it were in
// the file, and docs/configuration.md's reference is generated from the same table; tests fail
// when the reference, the table and the File type disagree. A few defaults depend on other keys
// (mqtt.client_id is the gateway.id, a device's area and line are the gateway's, a
// modbus-tcp unit_id is 1, modbus-rtu serial settings) and are applied by the decoder, still
// with their value and description in the table.
//
// # Relative paths
//
// gateway.data_dir and mqtt.password_file are resolved against the directory of the config
// file, not the working directory, so `floorlink run -c /etc/floorlink/line1.yaml` finds
// ./data in /etc/floorlink whatever directory systemd starts it in. File holds the absolute
// paths.
//
// # Caveats
//
// Time zones come from the embedded tz database (time/tzdata, about 450 KB), because gateways
// often run minimal images without /usr/share/zoneinfo, and a zone that fails to load would move
// shift boundaries. The limit of buffer.max_bytes on 32-bit gateways (512MiB) is the address
// space bbolt can map there.
package config
