package watch

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// SubscribeOptions configure Subscribe. Brokers is required; other zero values take the
// defaults given per field.
type SubscribeOptions struct {
	// Brokers are tried in turn, one per connection attempt: tcp://, mqtt://, ssl://, tls://
	// or mqtts:// host:port.
	Brokers []string
	// ClientID of the view's session, unique on the broker; "" means "floorlink-watch-" and
	// a random suffix.
	ClientID string
	// Username and Password for the broker; empty means anonymous.
	Username, Password string
	// TLS for ssl://, tls:// and mqtts:// brokers; nil means the system's roots.
	TLS *tls.Config
	// Filters are the topic filters subscribed; empty means the model's decoder's.
	Filters []string
	// ConnectTimeout bounds one connection attempt; zero means 10s. Once ctx ends, Subscribe
	// may wait this long for an attempt in progress.
	ConnectTimeout time.Duration
	// KeepAlive is the MQTT keep-alive; zero means 30s.
	KeepAlive time.Duration
	// MinBackoff and MaxBackoff bound the wait between connection attempts; zero means 250ms
	// and 10s.
	MinBackoff, MaxBackoff time.Duration
	// Subscribed, when set, is called each time the broker acknowledged the subscriptions of
	// a new connection.
	Subscribed func()
	// Log receives connection events; nil discards them.
	Log *slog.Logger
}

func (o SubscribeOptions) withDefaults(m *Model) (SubscribeOptions, error) {
	var errs []error
	if len(o.Brokers) == 0 {
		errs = append(errs, errors.New("brokers: at least one broker is required"))
	}
	for i, b := range o.Brokers {
		u, err := url.Parse(b)
		ok := err == nil && u.Host != ""
		if ok {
			switch u.Scheme {
			case "tcp", "mqtt", "ssl", "tls", "mqtts":
			default:
				ok = false
			}
		}
		if !ok {
			errs = append(errs, fmt.Errorf("brokers[%d]: %q is not a broker address (want tcp://host:port or ssl://host:port)", i, b))
		}
	}
	if len(errs) > 0 {
		return o, errors.Join(errs...)
	}
	if o.ClientID == "" {
		o.ClientID = fmt.Sprintf("floorlink-watch-%016x", rand.Uint64())
	}
	if len(o.Filters) == 0 {
		o.Filters = m.Decoder().Filters()
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.ConnectTimeout, 10*time.Second)
	def(&o.KeepAlive, 30*time.Second)
	def(&o.MinBackoff, 250*time.Millisecond)
	def(&o.MaxBackoff, 10*time.Second)
	o.MaxBackoff = max(o.MaxBackoff, o.MinBackoff)
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// Subscribe feeds every message on opts.Filters to m.Handle until ctx ends, then disconnects
// and returns nil. It tells m the state of its connection (SetConnection). It owns its
// connection: paho's automatic reconnect is off, and Subscribe reconnects with backoff on a
// new client after any loss. It returns an error only for invalid options, or when a broker
// refuses the connection (credentials, client id) or a subscription, which retrying would not
// mend.
//
// Subscriptions are QoS 0 with a clean session: a live view wants the latest message, not a
// backlog, and the broker queues nothing for it while it is away.
func Subscribe(ctx context.Context, opts SubscribeOptions, m *Model) error {
	o, err := opts.withDefaults(m)
	if err != nil {
		return fmt.Errorf("watch options: %w", err)
	}
	backoff := o.MinBackoff
	for attempt := 0; ; attempt++ {
		broker := o.Brokers[attempt%len(o.Brokers)]
		m.SetConnection(broker, "connecting", nil)
		connected, err := session(ctx, &o, broker, m)
		if ctx.Err() != nil {
			m.SetConnection(broker, "disconnected", nil)
			return nil
		}
		var fatal *fatalError
		if errors.As(err, &fatal) {
			m.SetConnection(broker, "refused", fatal.err)
			return fatal.err
		}
		if connected {
			backoff = o.MinBackoff
		}
		m.SetConnection(broker, "disconnected", err)
		o.Log.Warn("mqtt session ended", "broker", broker, "err", err, "retry_in", backoff.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff + time.Duration((rand.Float64()*0.4-0.2)*float64(backoff))):
		}
		backoff = min(backoff*2, o.MaxBackoff)
	}
}

// fatalError is a session's error that ends Subscribe.
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }

// session runs one connection from connect to loss or the end of ctx. connected reports
// whether the broker accepted the connection.
func session(ctx context.Context, o *SubscribeOptions, broker string, m *Model) (connected bool, err error) {
	lost := make(chan error, 1)
	po := mqtt.NewClientOptions().AddBroker(broker).SetClientID(o.ClientID).
		SetUsername(o.Username).SetPassword(o.Password).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).
		// MQTT 3.1.1 only: paho would otherwise retry a failed attempt as 3.1 within Connect.
		SetProtocolVersion(4).
		SetKeepAlive(o.KeepAlive).SetConnectTimeout(o.ConnectTimeout).SetWriteTimeout(o.ConnectTimeout).
		// One goroutine hands messages to the model in arrival order, so that a tag's values
		// merge in the order they were published.
		SetOrderMatters(true).
		// Every message goes to the model, retained ones (a gateway's status) included, and
		// a message matching two filters is handled once.
		SetDefaultPublishHandler(func(_ mqtt.Client, msg mqtt.Message) {
			m.Handle(msg.Topic(), msg.Payload(), time.Now())
		}).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			select {
			case lost <- err:
			default:
			}
		})
	if o.TLS != nil {
		po.SetTLSConfig(o.TLS)
	}
	client := mqtt.NewClient(po)
	tok := client.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		// paho cannot abort a connect: wait for it (ConnectTimeout bounds it), so that no
		// goroutine of this client outlives Subscribe.
		<-tok.Done()
		if tok.Error() == nil {
			client.Disconnect(0)
		}
		return false, ctx.Err()
	}
	if err := tok.Error(); err != nil {
		err = fmt.Errorf("connect to %s: %w", broker, err)
		if ct, ok := tok.(*mqtt.ConnectToken); ok {
			switch ct.ReturnCode() {
			case packets.ErrRefusedBadUsernameOrPassword, packets.ErrRefusedNotAuthorised,
				packets.ErrRefusedIDRejected, packets.ErrRefusedBadProtocolVersion:
				return false, &fatalError{err}
			}
		}
		return false, err
	}
	log := o.Log.With("broker", broker)
	filters := make(map[string]byte, len(o.Filters))
	for _, f := range o.Filters {
		filters[f] = 0
	}
	sub := client.SubscribeMultiple(filters, nil)
	select {
	case <-sub.Done():
	case err := <-lost:
		client.Disconnect(0)
		return true, fmt.Errorf("connection lost while subscribing: %w", err)
	case <-ctx.Done():
		client.Disconnect(250)
		return true, nil
	}
	if err := sub.Error(); err != nil {
		client.Disconnect(0)
		return true, fmt.Errorf("subscribe on %s: %w", broker, err)
	}
	for f, qos := range sub.(*mqtt.SubscribeToken).Result() {
		if qos == 0x80 {
			client.Disconnect(0)
			return true, &fatalError{fmt.Errorf("subscribe to %q on %s: refused by the broker", f, broker)}
		}
	}
	m.SetConnection(broker, "connected", nil)
	log.Info("watching", "topics", o.Filters)
	if o.Subscribed != nil {
		o.Subscribed()
	}
	select {
	case err := <-lost:
		client.Disconnect(0)
		return true, fmt.Errorf("connection lost: %w", err)
	case <-ctx.Done():
		client.Disconnect(250)
		return true, nil
	}
}
