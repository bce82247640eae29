#!/usr/bin/env node
// Decodes Sparkplug B payloads with npm sparkplug-payload 1.0.3, a decoder independent of
// Floorlink's, for agent/publish's tests (`make deps` installs it into .deps/sparkplug).
//
//   node scripts/sparkplug/decode.js [--raw] FILE...
//
// prints one JSON line per file: the library's view (decodePayload: values typed by datatype),
// or with --raw the wire view (protobufjs Payload.decode, every field as sent, oneofs named).
// 64-bit integers print as decimal strings, bytes as hex.
'use strict';
const fs = require('fs');
const path = require('path');

const modules = process.env.SPARKPLUG_NODE_MODULES ||
	path.join(__dirname, '..', '..', '.deps', 'sparkplug', 'node_modules');
const sparkplug = require(path.join(modules, 'sparkplug-payload'));
const proto = require(path.join(modules, 'sparkplug-payload', 'lib', 'sparkplugPayloadProto'));
const Long = require(path.join(modules, 'long'));

const args = process.argv.slice(2);
const raw = args[0] === '--raw';
if (raw) args.shift();
const Payload = proto.org.eclipse.tahu.protobuf.Payload;
const codec = sparkplug.get('spBv1.0');

function plain(v) {
	if (Long.isLong(v)) return v.toString();
	if (Buffer.isBuffer(v) || v instanceof Uint8Array) return Buffer.from(v).toString('hex');
	if (Array.isArray(v)) return v.map(plain);
	if (v !== null && typeof v === 'object') {
		const out = {};
		for (const k of Object.keys(v)) out[k] = plain(v[k]);
		return out;
	}
	return v;
}

for (const file of args) {
	const buf = fs.readFileSync(file);
	const view = raw
		? Payload.toObject(Payload.decode(buf), { longs: String, bytes: String, oneofs: true })
		: codec.decodePayload(buf);
	process.stdout.write(JSON.stringify(plain(view)) + '\n');
}
