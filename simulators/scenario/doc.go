// Package scenario reads scenario files for plcsim: YAML that scripts machines of the line
// (line.Script), and Clock, the accelerated clock that plcsim and a test share.
//
// It knows the file format only; the semantics of a scripted machine (how running time makes
// parts, when rejects and resets happen) are line's, documented in simulators/line. Like all of
// simulators/, it imports nothing of Floorlink outside simulators/.
//
// # File format
//
//	clock_start: 2026-03-02T06:00:00+09:00 # optional: the simulated time of tick 0 it assumes
//	machines:
//	  - machine: 1          # 1..247, the Modbus unit id; each machine at most once
//	    cycle: 2.5s          # actual cycle time: running time per part
//	    ideal_cycle: 2s      # design cycle time, served as ideal_cycle_time_ms
//	    reject_every: 20     # every 20th completed part is a reject (0: none)
//	    reject_rate: 0.01    # and others at this probability, from the seeded stream (0: none)
//	    start_parts: 65500   # counters start here (parts and good; rejects at 0)
//	    timeline:            # offsets from tick 0, strictly increasing, the first at 0s
//	      - {at: 0s, state: running}
//	      - {at: 1h, state: down, alarm: 101}
//	      - {at: 1h30m, state: running}
//	      - {at: 2h, cycle: 3s, ideal_cycle: 2.4s} # a product changeover
//	      - {at: 3h, reset: true}                  # counters to 0, as after a PLC restart
//
// States are running, idle, blocked, down, setup and maintenance (served as 1..6). Durations use
// Go's syntax (2.5s, 1h30m) in whole milliseconds; cycles are 1 ms..65.535 s. An alarm needs
// state: down in the same event; an event must change something. Unknown keys, duplicate keys,
// anchors, aliases and bad values are errors, each an *Error with file:line:col and the field's
// path, all of them at once where the YAML itself parses. Offsets must also be multiples of the
// line's step and cycles at least one step: line.New checks those, knowing the step.
//
// Caveats: machines not in the file keep the random model; the number of machines of the line
// is plcsim's --machines, not the file's.
package scenario
