package publish

import (
	"context"
	"fmt"
	"time"

	"github.com/floorlink/floorlink/agent/record"
)

// jsonMode publishes the JSON contract (docs/mqtt.md): each record a QoS 1 message on its
// template topic, confirmed by its own PUBACK; the retained status, offline as the Will.
type jsonMode struct {
	p      *Publisher
	topics *topics
}

func (m *jsonMode) will(session uint64, begun time.Time) message {
	return message{topic: m.p.status, payload: appendStatusJSON(nil, "offline", begun, session), qos: 1, retained: true}
}

func (m *jsonMode) begin(ctx context.Context, c *conn) error {
	online := c.client.Publish(m.p.status, 1, true, appendStatusJSON(nil, "online", c.begun, c.session))
	if err := waitToken(ctx, online, c.lost); err != nil {
		return fmt.Errorf("publish online status: %w", err)
	}
	return nil
}

func (m *jsonMode) encode(out []slot, seq uint64, rec *record.Record, historical bool, buf []byte) ([]slot, error) {
	env := envelope{gateway: m.p.opts.Gateway, epoch: m.p.opts.Epoch, seq: seq, historical: historical}
	topic := m.topics.topic(rec.Source, rec.Kind)
	buf = appendRecordJSON(buf, env, rec)
	if len(buf) <= m.p.opts.MaxMessageBytes {
		return append(out, slot{seq: seq, topic: topic, buf: buf, qos: 1}), nil
	}
	parts, err := splitRecordJSON(env, rec, m.p.opts.MaxMessageBytes)
	if err != nil {
		return out, err
	}
	m.p.split.Add(1)
	for i, b := range parts {
		out = append(out, slot{seq: seq, topic: topic, buf: b, qos: 1, more: i < len(parts)-1})
	}
	return out, nil
}

// live publishes the assets' live KPI messages, retained and unconfirmed: a lost one is
// replaced by the next.
func (m *jsonMode) live(c *conn) {
	m.p.opts.Live(func(rec *record.Record) {
		env := envelope{gateway: m.p.opts.Gateway, epoch: m.p.opts.Epoch}
		c.client.Publish(m.topics.topic(rec.Source, record.KindKPI)+"/live", 1, true, appendRecordJSON(nil, env, rec))
	})
}

func (m *jsonMode) batch(room int) int { return room }

func (m *jsonMode) send(c *conn, batch []slot) {
	for i := range batch {
		if s := &batch[i]; s.topic != "" {
			s.token = c.client.Publish(s.topic, 1, false, s.buf)
			m.p.published.Add(1)
		}
	}
}

func (m *jsonMode) holdBack() time.Duration           { return 0 }
func (m *jsonMode) control() <-chan struct{}          { return nil }
func (m *jsonMode) handle(c *conn, sent uint64) error { return nil }

func (m *jsonMode) end(c *conn) {
	off := message{topic: m.p.status, payload: appendStatusJSON(nil, "offline", m.p.opts.Now(), c.session), qos: 1, retained: true}
	_ = c.publish(context.Background(), off, time.Second)
}
