package buffer

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// TestBuffer_AppendDroppable_QueuePolicy: with the writer stalled (not running), telemetry
// (AppendDroppable) is refused from the high-water mark on while Append still finds room up to
// the queue's length; refusals are counted per class; what was accepted is committed in order.
func TestBuffer_AppendDroppable_QueuePolicy(t *testing.T) {
	b := openBuffer(t, "", Options{QueueLen: 8}) // high-water mark 6
	var accepted [][]byte
	appendOK := func(droppable bool, n uint64) {
		t.Helper()
		p := payload(n)
		var err error
		if droppable {
			err = b.AppendDroppable(p)
		} else {
			err = b.Append(p)
		}
		if err != nil {
			t.Fatalf("append %d (droppable %v): %v", n, droppable, err)
		}
		accepted = append(accepted, p)
	}
	for i := range uint64(4) {
		appendOK(true, i)
	}
	appendOK(false, 4)
	appendOK(true, 5) // the 6th: the queue held 5
	if err := b.AppendDroppable(payload(6)); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("AppendDroppable with 6 queued = %v, want ErrQueueFull", err)
	}
	appendOK(false, 7)
	appendOK(false, 8)
	if err := b.AppendDroppable(payload(9)); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("AppendDroppable with 8 queued = %v, want ErrQueueFull", err)
	}
	if err := b.Append(payload(10)); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("Append with 8 queued = %v, want ErrQueueFull", err)
	}
	s := b.Stats()
	if s.QueueLen != 8 || s.Appended != 8 || s.QueueFull != 3 || s.QueueFullDroppable != 2 || s.QueueFullAppend != 1 {
		t.Errorf("Stats: %+v", s)
	}

	runBuffer(t, b)
	flush(t, b)
	got := readAll(t, b, 0)
	if len(got) != len(accepted) {
		t.Fatalf("%d entries, want %d", len(got), len(accepted))
	}
	for i, e := range got {
		if !bytes.Equal(e.payload, accepted[i]) {
			t.Errorf("entry %d holds payload %x…, want %x…", e.seq, e.payload[:8], accepted[i][:8])
		}
	}
	if err := b.AppendDroppable(payload(11)); err != nil {
		t.Errorf("AppendDroppable with the queue drained: %v", err)
	}
}

func TestBuffer_AppendDroppable_Options(t *testing.T) {
	b := openBuffer(t, "", Options{QueueLen: 4, DroppableQueueLen: 1})
	if err := b.AppendDroppable(nil); err != nil {
		t.Fatal(err)
	}
	if err := b.AppendDroppable(nil); !errors.Is(err, ErrQueueFull) {
		t.Errorf("second AppendDroppable with DroppableQueueLen 1 = %v, want ErrQueueFull", err)
	}
	for _, opts := range []Options{{QueueLen: 4, DroppableQueueLen: 5}, {DroppableQueueLen: -1}, {DroppableQueueLen: defaultQueueLen + 1}} {
		if _, err := Open(tempPath(t), opts, nil); err == nil || !strings.Contains(err.Error(), "DroppableQueueLen") {
			t.Errorf("Open with %+v = %v, want an error naming DroppableQueueLen", opts, err)
		}
	}
}

func TestBuffer_AppendDroppable_Allocs(t *testing.T) {
	b := openBuffer(t, "", Options{QueueLen: 2000, DroppableQueueLen: 2000})
	p := payload(1)
	allocs := testing.AllocsPerRun(1000, func() {
		if err := b.AppendDroppable(p); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 1 {
		t.Errorf("AppendDroppable allocates %v times per call, want at most 1", allocs)
	}
}

func TestBuffer_Append_TooLarge(t *testing.T) {
	b := openBuffer(t, "", Options{MaxBytes: MinMaxBytes})
	if err := b.Append(make([]byte, MinMaxBytes/128)); err != nil {
		t.Errorf("Append of MaxBytes/128: %v", err)
	}
	for name, err := range map[string]error{
		"Append":          b.Append(make([]byte, MinMaxBytes/128+1)),
		"AppendDroppable": b.AppendDroppable(make([]byte, MinMaxBytes/128+1)),
	} {
		if !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s over MaxBytes/128 = %v, want ErrTooLarge", name, err)
		}
	}
}

func TestOpen_LimitOptions(t *testing.T) {
	for _, tc := range []struct {
		opts  Options
		field string
	}{
		{Options{MaxBytes: MinMaxBytes - 1}, "MaxBytes"},
		{Options{MaxBytes: -1}, "MaxBytes"},
		{Options{MaxAge: -1}, "MaxAge"},
	} {
		if _, err := Open(tempPath(t), tc.opts, nil); err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("Open with %+v = %v, want an error naming %s", tc.opts, err, tc.field)
		}
	}
}
