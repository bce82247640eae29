// Package kpi computes production KPIs of assets (machines) after ISO 22400-2 from the samples
// of their devices: the time model (planned busy time, actual production time, setup, down,
// delay, maintenance, planned downtime, unknown time), availability, performance, quality, OEE,
// throughput, scrap ratio, MTBF, MTTR, stops and micro-stops, per window (tumbling, shift, day).
//
// The engine is pure: samples and time in, records and a snapshot out. It does no I/O, starts
// no goroutine and never reads the clock. It imports only drivers (the samples) and
// agent/record (the records); the agent maps the config file onto Asset and commits each
// record with a snapshot in one buffer transaction (docs/kpi.md, "Wiring").
package kpi
