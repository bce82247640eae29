// Package kpi computes production KPIs of assets (machines) after ISO 22400-2 from the samples
// of their devices: the time model (planned busy time, actual production time, setup, down,
// delay, maintenance, planned downtime, unknown time), availability and coverage, performance,
// quality, OEE, throughput, scrap ratio, MTBF, MTTR, stops and micro-stops, per window
// (tumbling, shift, day) in the schedule's time zone. docs/kpi.md defines every field.
//
// The engine is pure: samples and time in, records and a snapshot out. It does no I/O, starts
// no goroutine and never reads the clock. It imports only drivers (the samples) and
// agent/record (the records), and knows nothing of the config file: the agent maps the file's
// assets onto Asset, and commits each record with a snapshot in one buffer transaction.
//
// # Caveats
//
//   - An Engine is not safe for concurrent use. Device goroutines call Observe; the agent
//     serializes every call with one mutex.
//   - Tags are bound by their index in the Device given to New: give New the same Device
//     values the drivers poll.
//   - Time comes only from Batch.ReadTime and Next's now, and must be one clock. When both
//     carry monotonic readings (time.Now() of one process), a step of the wall clock between
//     them is detected and its time made unknown; a clock without them (a test's, an
//     accelerated one) is taken as it is.
//   - A window closes when a time input after its end arrives, and one that holds a stop not
//     yet classified waits for it (at most Asset.MicroStop). Next returns closed windows one by
//     one: commit each with the Snapshot taken right after it, or a crash can lose or repeat it.
//   - After Restore, drain Next(now) before the first Observe, so that the windows that ended
//     while the agent was away are returned one by one. A gap longer than a week is not filled
//     with windows (see docs/kpi.md).
package kpi
