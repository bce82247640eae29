package publish_test

import (
	"context"
	"fmt"
	"sync"
)

// memSource is an in-memory Source with the buffer's contract (seq from 1, gap-free, cursor never
// backwards). The publisher's tests use it so they can run without the buffer package, which
// publish must not import; the agent's and the end-to-end tests run the real buffer.
type memSource struct {
	mu      sync.Mutex
	entries [][]byte // entries[i] has seq i+1
	cursor  uint64
	acks    int // Ack calls that moved the cursor
	changed chan struct{}
}

func newMemSource() *memSource { return &memSource{changed: make(chan struct{})} }

func (m *memSource) add(payload []byte) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.entries = append(m.entries, payload)
	close(m.changed)
	m.changed = make(chan struct{})
	return uint64(len(m.entries))
}

func (m *memSource) ReadAfter(after uint64, max int, fn func(uint64, []byte) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if after < m.cursor {
		return fmt.Errorf("read after %d: before cursor %d", after, m.cursor)
	}
	for seq := after + 1; seq <= uint64(len(m.entries)) && max > 0; seq, max = seq+1, max-1 {
		if err := fn(seq, m.entries[seq-1]); err != nil {
			return err
		}
	}
	return nil
}

func (m *memSource) Ack(through uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if through > uint64(len(m.entries)) {
		return fmt.Errorf("ack %d beyond head %d", through, len(m.entries))
	}
	if through > m.cursor {
		m.cursor = through
		m.acks++
	}
	return nil
}

func (m *memSource) Cursor() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cursor
}

func (m *memSource) Head() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return uint64(len(m.entries))
}

func (m *memSource) Wait(ctx context.Context, after uint64) error {
	for {
		m.mu.Lock()
		head, ch := uint64(len(m.entries)), m.changed
		m.mu.Unlock()
		if head > after {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
