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
// # Scripted machines
//
// Config.Scripts replaces the random model of chosen machines by a timeline (Script), so that a
// test can compute every served value by hand. Time is the offset from the line's start, t =
// (tick − Config.InitialTick) × Step; an Event at offset At shows in the snapshot of the tick at
// which t == At, and holds until the next event that changes the same thing. So the state in force
// over the interval [t, t+Step) is the one served at t, and over any interval [a, b) whose ends
// are multiples of Step the running time is exactly the total length of its running states.
//
//   - Parts: the running time accumulates only while the state is Running; a part completes each
//     time it reaches the current actual cycle time c, and the excess carries over to the next
//     part, as does partial progress over any stop. With a constant c the parts completed by t
//     are floor(R(t)/c), R(t) the running time before t. A changeover keeps the progress and
//     measures it against the new cycle from its offset on.
//   - Rejects: completed part number k (1-based, counted from the line's start across resets) is
//     a reject when Script.RejectEvery divides k, so by t there are floor(P/N) of them for P
//     parts since the start; Script.RejectRate then rejects others at random, from the machine's
//     seeded stream. GoodTotal + RejectTotal == PartsTotal, modulo 2^32.
//   - Counters start at Script.StartParts (RejectTotal at 0); an Event with Reset sets all three
//     to 0 at its offset, after counting the parts completed up to it.
//   - CycleTimeMs is the actual cycle time of the last completed part (0 before the first),
//     IdealCycleTimeMs the ideal cycle time in force; AlarmCode is the down event's alarm while
//     its state lasts, 0 otherwise.
//   - A scripted machine never starves or blocks on its own: it takes a part from its input
//     buffer per completed part when there is one, and puts each good part into its output buffer
//     when there is room (else the part leaves the line), so random machines beside it go on.
//     Process values (temperature, pressure, spindle speed) follow the scripted state as in the
//     random model, with noise.
//
// Caveats: a machine completes at most one cycle per tick, which is why Config.Step is limited to
// 1 s (the shortest ideal cycle is 1.6 s). Counters wrap at 2^32 like a PLC's UDINT.
package line
