package buffer_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

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
