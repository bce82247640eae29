// Package agent wires Floorlink together and owns its lifecycle: it builds the buffer, the
// publisher and one driver per device from a config.File, runs them, and stops them in an order
// that loses nothing (see Agent.Run).
//
// The pipeline lives here too: it turns each driver's Batch into a telemetry Record (scale and
// offset applied, values keyed by tag name) and each driver Event into an event Record, encodes
// them and appends them to the buffer.
package agent
