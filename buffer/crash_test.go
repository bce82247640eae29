package buffer

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// child runs in a re-executed test binary (see TestMain). It returns the exit code.
func child(mode, path string) int {
	time.AfterFunc(2*time.Minute, func() { // the parent kills or waits for us long before
		fmt.Fprintln(os.Stderr, "child: timed out")
		os.Exit(3)
	})
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	var err error
	switch mode {
	case "crash":
		err = crashChild(path, Options{}, log)
	case "crash-limit":
		err = crashChild(path, Options{MaxBytes: crashMaxBytes}, log)
	case "diskfull":
		err = diskFullChild(path, log)
	case "diskfull-limit":
		err = diskFullLimitChild(path, log)
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	return 0
}

// crashMaxBytes is the limit of the crash test with MaxBytes: well under the backlog of about
// 2000-3000 entries (0.5 MB) the child keeps, plus what it appends between acks.
const crashMaxBytes = 1 << 20

// crashChild appends as fast as it can, each payload with a state naming it, acknowledges now and
// then, and prints every committed head it sees, until it is killed. The payload of the entry
// with seq s is payload(s): one producer, and seqs are assigned in append order.
func crashChild(path string, opts Options, log *slog.Logger) error {
	b, err := Open(path, opts, log)
	if err != nil {
		return err
	}
	if moved, cause := b.MovedAside(); moved != "" {
		return fmt.Errorf("file moved aside: %w", cause)
	}
	ctx := context.Background()
	fail := make(chan error, 3)
	go func() { fail <- fmt.Errorf("Run returned: %v", b.Run(ctx)) }()
	go func() { // producer
		for next := b.Head() + 1; ; {
			h := b.Head()
			p := payload(next)
			switch err := b.Append(p, State{"last", p[:8]}); {
			case err == nil:
				next++
			case errors.Is(err, ErrQueueFull):
				if err := b.Wait(ctx, h); err != nil {
					fail <- err
					return
				}
			default:
				fail <- err
				return
			}
		}
	}()
	go func() { // consumer: keeps a backlog of about 2000 entries
		for h := b.Head(); ; h = b.Head() {
			if err := b.Wait(ctx, h); err != nil {
				fail <- err
				return
			}
			if h > b.Cursor()+3000 {
				if err := b.Ack(h - 2000); err != nil {
					fail <- err
					return
				}
			}
		}
	}()
	go func() { // printer: every head printed is committed
		for h := b.Head(); ; {
			if err := b.Wait(ctx, h); err != nil {
				fail <- err
				return
			}
			h = b.Head()
			if _, err := fmt.Fprintln(os.Stdout, h); err != nil {
				fail <- err
				return
			}
		}
	}()
	return <-fail
}

// runChild runs the test binary as a child in mode on path. onLine gets each line of its
// standard output and the running command; its standard error is logged if the test fails.
func runChild(t *testing.T, mode, path string, onLine func(line string, cmd *exec.Cmd)) error {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+path, childEnv+"_MODE="+mode)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timeout := time.AfterFunc(time.Minute, func() { _ = cmd.Process.Kill() })
	defer timeout.Stop()
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		onLine(sc.Text(), cmd)
	}
	err = cmd.Wait()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("child %s standard error:\n%s", mode, stderr.String())
		}
	})
	return err
}

// TestBuffer_Crash kills a child appending at full speed at a random moment, then proves that
// every head it reported committed is there, with the right payload and a state that agrees.
func TestBuffer_Crash(t *testing.T) {
	testCrash(t, "crash", 0)
}

// TestBuffer_Crash_Limit is TestBuffer_Crash with MaxBytes: the child drops as it goes, and
// the file stays within MaxBytes through the kills.
func TestBuffer_Crash_Limit(t *testing.T) {
	testCrash(t, "crash-limit", crashMaxBytes)
}

func testCrash(t *testing.T, mode string, maxBytes int64) {
	path := tempPath(t)
	for round := range 4 {
		start := time.Now()
		killAfter := 3 + rand.IntN(40)
		var heads []uint64
		killed := false
		err := runChild(t, mode, path, func(line string, cmd *exec.Cmd) {
			h, err := strconv.ParseUint(line, 10, 64)
			if err != nil {
				t.Errorf("child printed %q", line)
				return
			}
			heads = append(heads, h)
			if !killed && len(heads) == killAfter {
				killed = true
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Error(err)
				}
			}
		})
		if !killed || err == nil || !strings.Contains(err.Error(), "killed") {
			t.Fatalf("round %d: child ended with %v after %d heads, want it killed after %d", round, err, len(heads), killAfter)
		}

		checkInvariants(t, path)
		if maxBytes > 0 {
			checkFileSize(t, path, maxBytes)
		}
		b, err := Open(path, Options{MaxBytes: maxBytes}, testLog(t))
		if err != nil {
			t.Fatalf("round %d: reopen after kill: %v", round, err)
		}
		if moved, cause := b.MovedAside(); moved != "" {
			t.Fatalf("round %d: file moved aside after kill: %v", round, cause)
		}
		head, cursor := b.Head(), b.Cursor()
		for _, h := range heads {
			if h > head {
				t.Errorf("round %d: head %d was reported committed, file head is %d", round, h, head)
			}
		}
		entries := readAll(t, b, 0)
		if uint64(len(entries)) != head-cursor {
			t.Errorf("round %d: %d entries, want head %d - cursor %d", round, len(entries), head, cursor)
		}
		for _, e := range entries {
			if !bytes.Equal(e.payload, payload(e.seq)) {
				t.Fatalf("round %d: entry %d holds payload %x…, want %x…", round, e.seq, e.payload[:8], payload(e.seq)[:8])
			}
		}
		checkStateAgrees(t, b)
		t.Logf("round %d: killed after %d heads (last %d); file head %d cursor %d; %v", round, len(heads), heads[len(heads)-1], head, cursor, time.Since(start))
		if maxBytes > 0 && head-cursor > 2*crashMaxBytes/200 {
			t.Errorf("round %d: %d entries of 200 bytes kept within MaxBytes %d", round, head-cursor, maxBytes)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	}
	checkInvariants(t, path)
}

// diskFullChild fills the disk (a file size limit makes the kernel refuse to grow the file),
// checks that commits fail, are counted and retried while Flush waits, then lifts the limit and
// checks that everything appended is committed, in order.
func diskFullChild(path string, log *slog.Logger) error {
	b, err := Open(path, Options{}, log)
	if err != nil {
		return err
	}
	defer b.Close()
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	var orig syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &orig); err != nil {
		return err
	}
	limited := orig
	limited.Cur = uint64(fi.Size()) + 64<<10
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &limited); err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	const n = 5000 // 1 MB: far over the limit
	for i := range uint64(n) {
		if err := b.Append(payload(i + 1)); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for b.Stats().CommitFailures < 3 { // failed commits wake nobody: poll
		if time.Now().After(deadline) {
			return fmt.Errorf("commits did not fail under the file size limit: %+v", b.Stats())
		}
		<-tick.C
	}
	fctx, fcancel := context.WithTimeout(ctx, 200*time.Millisecond)
	err = b.Flush(fctx)
	fcancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("Flush while commits fail = %v, want it still waiting", err)
	}

	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &orig); err != nil {
		return err
	}
	fctx, fcancel = context.WithTimeout(ctx, 30*time.Second)
	err = b.Flush(fctx)
	fcancel()
	if err != nil {
		return fmt.Errorf("Flush after the disk has room again: %w", err)
	}
	var got uint64
	err = b.ReadAfter(0, 2*n, func(seq uint64, p []byte) error {
		got++
		if seq != got || !bytes.Equal(p, payload(seq)) {
			return fmt.Errorf("entry %d: seq %d, payload %x…", got, seq, p[:8])
		}
		return nil
	})
	if err != nil {
		return err
	}
	if got != n {
		return fmt.Errorf("%d entries, want %d", got, n)
	}
	s := b.Stats()
	cancel()
	if err := <-done; err != nil {
		return fmt.Errorf("Run: %w", err)
	}
	fmt.Printf("ok failures=%d commits=%d committed=%d\n", s.CommitFailures, s.Commits, s.Committed)
	return nil
}

// TestBuffer_Append_DiskFull runs diskFullChild: a file size limit is process-wide, so it gets a
// process of its own.
func TestBuffer_Append_DiskFull(t *testing.T) {
	path := tempPath(t)
	var out []string
	err := runChild(t, "diskfull", path, func(line string, _ *exec.Cmd) { out = append(out, line) })
	if err != nil {
		t.Fatalf("child: %v; output %q", err, out)
	}
	if len(out) != 1 || !strings.HasPrefix(out[0], "ok failures=") {
		t.Fatalf("child output %q", out)
	}
	t.Log(out[0])
	checkInvariants(t, path)
	b := openBuffer(t, path, Options{})
	if h := b.Head(); h != 5000 {
		t.Errorf("Head() after reopen = %d, want 5000", h)
	}
}

// diskFullLimitChild is diskFullChild with MaxBytes under the space the file may take: the
// buffer drops the oldest entries instead of failing commits.
func diskFullLimitChild(path string, log *slog.Logger) error {
	const maxBytes = 2 << 20
	var drops uint64
	b, err := Open(path, Options{MaxBytes: maxBytes, OnDrop: func(d Drop) { drops += d.Count }}, log)
	if err != nil {
		return err
	}
	defer b.Close()
	var orig syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &orig); err != nil {
		return err
	}
	limited := orig
	limited.Cur = maxBytes + 64<<10
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &limited); err != nil {
		return err
	}
	defer syscall.Setrlimit(syscall.RLIMIT_FSIZE, &orig)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	const n = 50000 // 10 MB: five times MaxBytes
	for i := range uint64(n) {
		if err := appendWaiting(b, payload(i+1)); err != nil {
			return err
		}
	}
	fctx, fcancel := context.WithTimeout(ctx, 30*time.Second)
	err = b.Flush(fctx)
	fcancel()
	if err != nil {
		return err
	}
	s := b.Stats()
	cancel()
	if err := <-done; err != nil {
		return fmt.Errorf("Run: %w", err)
	}
	switch {
	case s.CommitFailures != 0:
		return fmt.Errorf("%d commits failed under MaxBytes: %+v", s.CommitFailures, s)
	case s.Head != n || s.Dropped != s.Cursor || s.Dropped == 0 || drops != s.Dropped:
		return fmt.Errorf("head %d (want %d), %d dropped (OnDrop %d), cursor %d", s.Head, n, s.Dropped, drops, s.Cursor)
	case s.FileBytes > maxBytes:
		return fmt.Errorf("file %d bytes, over MaxBytes %d", s.FileBytes, maxBytes)
	}
	fmt.Printf("ok dropped=%d kept=%d file=%d\n", s.Dropped, s.Entries, s.FileBytes)
	return nil
}

// TestBuffer_Append_DiskFull_Limit runs diskFullLimitChild: with MaxBytes below the room the
// disk has, a long outage drops instead of failing commits.
func TestBuffer_Append_DiskFull_Limit(t *testing.T) {
	path := tempPath(t)
	var out []string
	err := runChild(t, "diskfull-limit", path, func(line string, _ *exec.Cmd) { out = append(out, line) })
	if err != nil {
		t.Fatalf("child: %v; output %q", err, out)
	}
	if len(out) != 1 || !strings.HasPrefix(out[0], "ok dropped=") {
		t.Fatalf("child output %q", out)
	}
	t.Log(out[0])
	checkInvariants(t, path)
	checkFileSize(t, path, 2<<20)
}
