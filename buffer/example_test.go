package buffer_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/floorlink/floorlink/buffer"
)

func Example() {
	dir, err := os.MkdirTemp("", "buffer-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	b, err := buffer.Open(filepath.Join(dir, "buffer.db"), buffer.Options{}, nil)
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }() // the single writer

	// Producers: an append may carry state committed in the same transaction.
	for _, p := range []string{"first", "second", "third"} {
		if err := b.Append([]byte(p), buffer.State{Key: "last", Value: []byte(p)}); err != nil {
			log.Fatal(err)
		}
	}
	if err := b.Flush(ctx); err != nil {
		log.Fatal(err)
	}

	// The consumer: read from the cursor, copy out, acknowledge what was delivered.
	err = b.ReadAfter(b.Cursor(), 2, func(seq uint64, payload []byte) error {
		fmt.Printf("%d %s\n", seq, payload)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := b.Ack(2); err != nil {
		log.Fatal(err)
	}
	last, _ := b.State("last")
	fmt.Printf("head %d, cursor %d, last %s\n", b.Head(), b.Cursor(), last)

	// Shutdown: stop the writer (it commits what is queued), then close.
	stop()
	if err := <-done; err != nil {
		log.Fatal(err)
	}
	if err := b.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// 1 first
	// 2 second
	// head 3, cursor 2, last third
}

// The figures of `floorlink buffer stats` and the records of `floorlink buffer dump`, on a
// stopped agent's file.
func ExampleOpenReadOnly() {
	dir, err := os.MkdirTemp("", "buffer-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "buffer.db")
	fill(path, "first", "second", "third")

	b, err := buffer.OpenReadOnly(path)
	if errors.Is(err, buffer.ErrInUse) {
		log.Fatal("the agent is running: the same figures are in the gateway stats topic")
	}
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	s := b.Stats()
	fmt.Printf("epoch set: %v, head %d, cursor %d, entries %d, payload bytes %d\n", len(b.Epoch()) == 16, s.Head, s.Cursor, s.Entries, s.Bytes)
	err = b.ReadAfter(b.Cursor(), 10, func(seq uint64, payload []byte) error {
		fmt.Printf("%d %s\n", seq, payload)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output:
	// epoch set: true, head 3, cursor 0, entries 3, payload bytes 16
	// 1 first
	// 2 second
	// 3 third
}

// `floorlink buffer compact` on a stopped agent, after an outage has been drained.
func ExampleCompactFile() {
	dir, err := os.MkdirTemp("", "buffer-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "buffer.db")
	payloads := make([]string, 20000)
	for i := range payloads {
		payloads[i] = strings.Repeat("x", 200)
	}
	fill(path, payloads...)
	b, err := buffer.Open(path, buffer.Options{}, nil)
	if err != nil {
		log.Fatal(err)
	}
	if err := b.Ack(19999); err != nil { // the backlog was delivered, but for one record
		log.Fatal(err)
	}
	if err := b.Close(); err != nil {
		log.Fatal(err)
	}

	before, after, err := buffer.CompactFile(path)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("shrunk: %v\n", after < before/10)
	// Output:
	// shrunk: true
}

// fill appends payloads to a new buffer file at path and closes it.
func fill(path string, payloads ...string) {
	b, err := buffer.Open(path, buffer.Options{QueueLen: len(payloads), NoSync: true}, nil)
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	for _, p := range payloads {
		if err := b.Append([]byte(p)); err != nil {
			log.Fatal(err)
		}
	}
	stop()
	if err := <-done; err != nil {
		log.Fatal(err)
	}
	if err := b.Close(); err != nil {
		log.Fatal(err)
	}
}
