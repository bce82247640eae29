// Package drivers holds the vocabulary every protocol driver and the agent share: Device, Tag,
// Sample, Batch, Quality, Value and the Driver interface.
//
// It does no I/O and imports nothing of Floorlink's. Protocol words (register, unit ID, node ID,
// monitored item) stay in the protocol packages below it; here a Tag's address is an opaque string
// that only its driver parses.
//
// Caveats: a Batch handed to a Sink is only valid until the Sink's method returns. Drivers reuse
// its Samples slice on the next cycle so that polling allocates nothing per sample.
package drivers
