// Package verify checks that the records of Floorlink gateways arrive complete: it subscribes to
// their record topics and accounts, per gateway and epoch, for every seq (docs/mqtt.md: seq is
// gap-free per gateway and epoch across all buffered topics). It is what `floorlink verify`
// runs and what the chaos tests use to prove zero loss.
//
// A Tracker is the accounting, pure and without I/O; Run connects to a broker with paho and
// feeds one. For each stream (gateway, epoch) a Report gives the seqs received, the gaps
// (missing seqs), duplicates (a seq again with the same payload: expected, since delivery is
// at least once), conflicts (a seq again with a different payload: two records under one seq,
// a failure), arrivals out of order, the count of historical (replayed) messages, and the drops
// the gateway announced (an event record with values.event "drop" and values first_seq,
// last_seq, count and reason). Announced drops are reported apart from gaps: they are data the
// gateway chose to give up (its buffer full, or records too old), not silent loss. Messages on
// record topics that are not valid records are counted as invalid. A new epoch is a new stream:
// seq starts again at 1.
//
// # What it proves, and what it cannot
//
// A clean report proves that every seq from the first one judged to the last was delivered to
// the verifier at least once, and that no seq carried two different records. Payloads are
// compared by a 64-bit hash of the message without its historical flag (a record re-sent in a
// later session is marked historical); two different payloads escape detection only if their
// hashes collide, with probability 2^-64.
//
// The verifier sees what the broker delivered to it, nothing more:
//   - Seqs before the first one received are judged only with TrackerOptions.FromStart (the
//     verifier subscribed before the gateway's epoch began); seqs after the last one received
//     only with Tracker.Expect (the gateway's buffer head, read once it stopped). Otherwise a
//     loss of the first or the last records of a stream is invisible.
//   - With a clean session (the default), messages published while the verifier is
//     disconnected are never delivered to it and show as gaps that are the verifier's, not
//     the gateway's: Report.Connects and Report.Resumed tell. Options.Persistent keeps the
//     session on the broker, which then queues them; a broker restart keeps the queue only
//     with persistence on (Mosquitto: persistence true, stopped with SIGTERM).
//   - A broker may drop messages it accepted: Mosquitto's max_queued_messages (default 1000)
//     drops beyond that many queued for a slow or absent QoS 1 subscriber, and Mosquitto
//     without persistence forgets undelivered messages when it stops. Such gaps are the
//     broker's, and the verifier cannot tell them from the gateway's.
//   - An epoch that ends (its buffer file damaged and moved aside) loses its unsent records
//     after the last seq anyone saw; only Expect with the old file's head shows them.
//
// The Tracker keeps about 8.2 bytes per seq of a dense stream (the hash, one bit, page
// headers) and allocates nothing per message in order; see BenchmarkTracker_Observe.
package verify
