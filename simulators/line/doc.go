// Package line models a production line for plcsim: machines in series with small buffers between
// them, each with a state machine, part counters and noisy process values.
//
// The model is pure and deterministic: no wall clock, no goroutines, no locks. Time advances only
// by Step, one tick of Config.Step simulated time, and all randomness comes from one seeded
// math/rand/v2 stream per machine, so the same Config yields bit-identical snapshots at every tick
// however fast or slowly the caller steps it. Callers that share a Line between goroutines (a
// pacer and protocol front ends) guard it themselves.
//
// It must not know any protocol: register maps live in the front ends (simulators/modbus).
//
// # Dynamics
//
// Machine k takes a part from the buffer before it (machine 1 from an unlimited supply), works on
// it for one cycle and puts it into the buffer after it (the last machine into an unlimited sink).
// A machine is Idle (starved) when it has no part and its input buffer is empty, and Blocked when
// it holds a finished good part and its output buffer is full. Rejected parts go to scrap and never
// block. A cycle lasts the machine's ideal cycle time times (1 + a small positive jitter), rounded
// up to whole ticks, so CycleTimeMs is exactly the running time the part took.
//
// While running, a machine fails after an exponentially distributed running time (mean
// Config.MTBF) and stays Down for an exponentially distributed repair time (mean Config.MTTR) with
// an alarm code set; the part in work resumes afterwards. Between parts it does a Setup before each
// new lot of Config.LotSize parts and a planned Maintenance after Config.MaintenanceInterval of
// running time. Temperature, pressure and spindle speed follow first-order lags toward a setpoint
// that depends on the state, plus Gaussian noise on the reported value.
//
// Caveats: a machine completes at most one cycle per tick, which is why Config.Step is limited to
// 1 s (the shortest ideal cycle is 1.6 s). Counters wrap at 2^32 like a PLC's UDINT.
package line
