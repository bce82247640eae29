// Package buffer is Floorlink's store-and-forward queue: a durable FIFO of opaque byte payloads in
// one bbolt file, with an acknowledgement cursor and a little named state beside it.
//
// It knows nothing of records, MQTT or the rest of Floorlink and imports none of it: payloads are
// bytes in and bytes out (agent/record owns their encoding).
//
// # Use
//
// Open the file, run the writer in a goroutine the caller owns, append from any number of
// producers, read and acknowledge from the consumer:
//
//	b, err := buffer.Open(path, buffer.Options{}, log)
//	go func() { errc <- b.Run(ctx) }()  // the single writer
//	err = b.Append(payload)             // never blocks; ErrQueueFull is the backpressure
//	err = b.ReadAfter(b.Cursor(), 64, fn)
//	err = b.Ack(seq)
//	// shutdown: cancel ctx, wait for Run (it commits what is queued), then b.Close()
//
// The writer assigns each payload its seq when it commits it: seqs start at 1, have no gaps and
// are never reused within the file's Epoch, even after every entry is acknowledged and deleted.
// Whatever producers queue while a commit runs goes into the next one (group commit), so one
// fsync covers many payloads. An Append may carry State updates, written in the same transaction
// as its payload: after a crash both are there or neither is. Ack moves the cursor and deletes the
// acknowledged entries in one transaction.
//
// # File layout (format_version 1)
//
// Bucket "meta": format_version, epoch (16 hex characters), head and cursor (8-byte big-endian
// seqs). Bucket "entries": key the 8-byte big-endian seq, value the append time (8-byte
// big-endian unix nanoseconds) followed by the payload. Bucket "state": the named states. A file
// with a newer format_version is refused and never touched; a damaged one is moved aside.
//
// # Caveats
//
// ReadAfter runs its callback inside a bbolt read transaction. The payload it gets points into
// the memory-mapped file: it is valid only until the callback returns and must not be modified.
// Keep the callback short and copy what you keep: while a read transaction is open the writer
// cannot remap the file to grow it, so a slow callback can stall commits, and a callback that
// calls the Buffer's methods may deadlock.
//
// Options.NoSync skips fsync on commit and on Ack. A crash of the process still loses nothing the
// kernel has, but a power loss or kernel crash may lose the last commits and acknowledgements,
// and in the worst case damage the file (it is then moved aside on the next Open). Leave it off
// unless the device's storage cannot take the writes.
//
// bbolt never shrinks its file. Acknowledged entries free their pages for reuse, so the file
// stays bounded in steady state, but a backlog grows it to its high-water mark for good.
//
// Only one process may have a file open: bbolt locks it, and Open gives up after a second with
// an error saying the file is in use. Within a process, open each file once.
//
// Open reads the whole of an existing file to check it (bbolt has no page checksums and may
// panic on a damaged page long after opening it), so opening a large backlog takes time
// proportional to its size.
package buffer
