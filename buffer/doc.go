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
//	b, err := buffer.Open(path, buffer.Options{MaxBytes: 512 << 20, MaxAge: 7 * 24 * time.Hour,
//		OnDrop: announce, OnClockJump: report}, log)
//	go func() { errc <- b.Run(ctx) }()  // the single writer
//	err = b.Append(kpiRecord, state)    // never blocks; ErrQueueFull is the backpressure
//	err = b.AppendDroppable(telemetry)  // refused first when the disk stalls
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
// Options.MaxBytes and Options.MaxAge drop the oldest entries: the writer deletes them and moves
// the cursor past them in the transaction of one of its commits, so a reader reading after the
// cursor never waits for them, and calls Options.OnDrop with the range once that commit is
// durable; Stats counts them by reason. Their seqs are never reused, so a consumer sees the gap.
//
// For a stopped agent's tools: OpenReadOnly inspects a file without writing to it, CompactFile
// shrinks one after a long outage (Compact copies one into a new file), and (*Buffer).WriteTo
// backs up a running buffer.
//
// # File layout (format_version 1)
//
// Bucket "meta": format_version, epoch (16 hex characters), head and cursor (8-byte big-endian
// seqs), and, once a clock jump was detected, age_floor (8-byte big-endian seq; absent means 0,
// and code without age limits ignores it). Bucket "entries": key the 8-byte big-endian seq,
// value the append time (8-byte big-endian unix nanoseconds, by Options.Now) followed by the
// payload. Bucket "state": the named states. A file with a newer format_version is refused and
// never touched; a damaged one is moved aside.
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
// stays bounded in steady state, but a backlog grows it to its high-water mark for good, until
// CompactFile (which needs the file closed: `floorlink buffer compact` on a stopped agent).
//
// The size budget. With Options.MaxBytes the file never grows beyond it. bbolt grows a file only
// when a commit allocates pages past its high-water mark, by a step the buffer sets to
// MaxBytes/32 (at most 16 MiB); so the buffer keeps the high-water mark at most
// (MaxBytes-step)/page-1 pages. Before each commit it takes bbolt's free-page count and the
// high-water mark, bounds from above the pages the commit can allocate (from bbolt's node
// layout and the sizes of what it writes), and commits only as many queued payloads as fit;
// when fewer free pages would be left than the next full commit and an Ack need, plus 1/64 of
// the file, it drops the oldest entries in the same commit, enough that the pages they free
// (counted from their sizes, at least) make up the difference. The bound rests on bbolt handing
// out any free page for a one-page node; for nodes of several pages (entries over about 1 KiB,
// and the freelist of files over 2 MiB) it also needs a free run that long, which the reserve
// makes likely but does not prove: the tests check the file after every commit with payloads
// up to the limit, with states, a lagging consumer and backups. A commit takes at most
// MaxBytes/32 of entries, and Append refuses payloads over MaxBytes/128 (ErrTooLarge). States
// count against MaxBytes and are never dropped. Acks allocate pages too: with MaxBytes an Ack
// that finds none fails (see below). What the budget leaves for entries depends on
// their size, because bbolt puts at least two entries in a node (a 2.8 KB entry takes 4 KiB),
// and on the file's size, the reserve being a larger share of a small file. Payload bytes kept
// at the limit, as a share of MaxBytes (BenchmarkLimit_Usable): 68 % for 300-byte payloads and
// 48 % for 2.8 KB ones at 2 MiB, 80 % and 59 % at 16 MiB, 82 % and 62 % at 128 MiB; about 39 %
// at 2 MiB with payloads mixed up to MaxBytes/128. The file itself reaches 87 % to 96 % of
// MaxBytes. A file already larger than MaxBytes
// (written without a limit, or with a larger one) keeps its size until compacted: commits use
// its pages without growing it, and the drops keep the entries within the budget of MaxBytes.
//
// While a read transaction is open (a ReadAfter callback, WriteTo), bbolt cannot reuse the
// pages freed since it began. At MaxBytes the writer then postpones its commits (Stats.Stalls,
// logged at Warn, retried with backoff) rather than grow the file or drop more: the queue fills
// and Append returns ErrQueueFull until the reader is done; and an Ack that finds no page fails,
// changing nothing, to be tried again.
//
// The clock rule. Entries are stamped with Options.Now at Append, and MaxAge compares those
// stamps with Options.Now at each commit and, between commits, every MaxAge/10 (1 s to 1 min).
// At each of those the buffer also compares how far the wall clock moved with how far the
// monotonic clock did; a difference over 2 s plus 0.1 % of the interval is a clock jump (an NTP
// step, a clock set by hand, a gateway without RTC getting the time), and so is, at Open, a
// newest entry stamped more than 2 s in the future (the clock went back while the file was
// closed). A jump is reported to Options.OnClockJump and counted, and every entry committed or
// queued at that moment is exempt from MaxAge for good: the age floor, kept in the file so that
// a restart, which has no monotonic reading to compare, cannot age them either. They still go by
// Ack or MaxBytes. Since drops are oldest first, entries appended after the jump age again once
// the exempt ones are gone. Stats.OldestAge uses the wall clock and is off by a jump until the
// entries stamped before it are gone.
//
// The queue policy. Producers never block: Append and AppendDroppable only queue, and return
// ErrQueueFull when there is no room. AppendDroppable (telemetry) is refused from
// Options.DroppableQueueLen queued payloads on (3/4 of the queue by default), so when the disk
// stalls the last quarter of the queue stays for Append (KPI records, events, whose loss would
// falsify KPIs). Stats counts refusals by class (QueueFullAppend, QueueFullDroppable). Nothing
// refused has a seq.
//
// Options.OnDrop and Options.OnClockJump run on Run's goroutine after the commit: while they
// run nothing is committed, so they must return quickly. They may call Append or
// AppendDroppable (which never block, and the writer holds no lock while calling them), e.g. to
// store an event about the drop; they must not call Flush or Wait, which would wait for the
// writer that is running them. A drop is announced once: a crash between its commit and the
// callback loses the announcement, not the count of the gap a consumer sees in the seqs.
//
// WriteTo holds one read transaction for the whole copy: the writer cannot remap the file to
// grow it meanwhile (bbolt's mmap lock), and at MaxBytes it stalls as above. OpenReadOnly holds a
// shared lock, so an agent starting meanwhile fails to open the file (about a second, ErrInUse);
// an agent running makes OpenReadOnly, Compact and CompactFile fail the same way.
//
// Only one process may have a file open: bbolt locks it, and Open gives up after a second with
// an error saying the file is in use. Within a process, open each file once.
//
// Open reads the whole of an existing file to check it (bbolt has no page checksums and may
// panic on a damaged page long after opening it), so opening a large backlog takes time
// proportional to its size.
package buffer
