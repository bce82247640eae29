package verify

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

// Observer takes every message Run receives, in arrival order, and each connection Run makes.
// *Tracker is one; a test can wrap it to look at the payloads too.
type Observer interface {
	Observe(topic string, payload []byte, at time.Time)
	Connected(resumed bool)
}

// DefaultTopic is the filter Run subscribes to when Options.Topics is empty: every message of
// every Floorlink gateway under the default topic template.
const DefaultTopic = "floorlink/v1/#"

// Options configure Run. Zero values take the defaults given per field; Brokers is required.
type Options struct {
	// Brokers are tried in turn, one per connection attempt: tcp://, mqtt://, ssl://, tls://
	// or mqtts:// host:port. Required.
	Brokers []string
	// ClientID of the verifier's MQTT session; it must be unique on the broker. Required with
	// Persistent, since the broker keeps the session under this id; otherwise "" means
	// "floorlink-verify-" and a random suffix.
	ClientID string
	// Username and Password for the broker; empty means anonymous.
	Username, Password string
	// TLS is the TLS configuration for ssl://, tls:// and mqtts:// brokers; nil means the
	// system's roots and the broker's host name.
	TLS *tls.Config
	// Topics are the topic filters subscribed at QoS 1; empty means DefaultTopic. A broker may
	// deliver a message once per matching filter, so overlapping filters show as duplicates.
	Topics []string
	// Persistent asks the broker to keep the verifier's session while it is disconnected
	// (clean session off): the broker queues the QoS 1 messages of the session's
	// subscriptions and delivers them on the next connection, so a verifier that loses its
	// connection, or a broker restarted with persistence on, misses nothing. The session stays
	// on the broker, queueing, after the verifier ends, until a clean connect with the same
	// ClientID or the broker's expiry (Mosquitto: persistent_client_expiration).
	Persistent bool
	// ConnectTimeout bounds one connection attempt; zero means 10s. Once ctx ends, Run may
	// wait this long for an attempt in progress.
	ConnectTimeout time.Duration
	// KeepAlive is the MQTT keep-alive; zero means 30s.
	KeepAlive time.Duration
	// MinBackoff and MaxBackoff bound the wait between connection attempts (exponential, with
	// jitter, reset after a connection the broker accepted); zero means 250ms and 10s.
	MinBackoff, MaxBackoff time.Duration
	// Subscribed, when set, is called on Run's goroutine each time the broker has
	// acknowledged the subscriptions of a new connection.
	Subscribed func()
	// Log receives connection events; nil discards them.
	Log *slog.Logger
}

func (o Options) withDefaults() (Options, error) {
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
	if o.Persistent && o.ClientID == "" {
		errs = append(errs, errors.New("client id: required with a persistent session, which the broker keeps under it"))
	}
	for i, f := range o.Topics {
		if f == "" {
			errs = append(errs, fmt.Errorf("topics[%d]: empty topic filter", i))
		}
	}
	if len(errs) > 0 {
		return o, errors.Join(errs...)
	}
	if o.ClientID == "" {
		o.ClientID = fmt.Sprintf("floorlink-verify-%016x", rand.Uint64())
	}
	if len(o.Topics) == 0 {
		o.Topics = []string{DefaultTopic}
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

// Run subscribes to opts.Topics at QoS 1 and feeds every message that arrives to t, until ctx
// ends; then it disconnects and returns nil. It owns its connection: paho's automatic
// reconnect is off, and Run reconnects itself with backoff, on a new client each time, after
// any loss. It returns an error only for invalid options, or when a broker refuses the
// connection (credentials, client id) or a subscription, which retrying would not mend.
//
// t sees each message after paho received it and before paho acknowledges it, so a message
// is never acknowledged to the broker unaccounted.
func Run(ctx context.Context, opts Options, t Observer) error {
	o, err := opts.withDefaults()
	if err != nil {
		return fmt.Errorf("verify options: %w", err)
	}
	backoff := o.MinBackoff
	for attempt := 0; ; attempt++ {
		broker := o.Brokers[attempt%len(o.Brokers)]
		connected, err := session(ctx, &o, broker, t)
		if ctx.Err() != nil {
			return nil
		}
		var fatal *fatalError
		if errors.As(err, &fatal) {
			return fatal.err
		}
		if connected {
			backoff = o.MinBackoff
		}
		o.Log.Warn("mqtt session ended", "broker", broker, "err", err, "retry_in", backoff.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(jitter(backoff)):
		}
		backoff = min(backoff*2, o.MaxBackoff)
	}
}

// fatalError is a session's error that ends Run.
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }

// jitter spreads reconnects over ±20%.
func jitter(d time.Duration) time.Duration {
	return d + time.Duration((rand.Float64()*0.4-0.2)*float64(d))
}

// session runs one connection from connect to loss or the end of ctx. connected reports
// whether the broker accepted the connection.
func session(ctx context.Context, o *Options, broker string, t Observer) (connected bool, err error) {
	lost := make(chan error, 1)
	observe := func(_ mqtt.Client, m mqtt.Message) { t.Observe(m.Topic(), m.Payload(), time.Now()) }
	po := mqtt.NewClientOptions().AddBroker(broker).SetClientID(o.ClientID).
		SetUsername(o.Username).SetPassword(o.Password).
		// With clean session off the broker keeps the subscriptions; Run subscribes again on
		// every connection anyway, in case it did not (a broker restarted without
		// persistence). paho's ResumeSubs would replay SUBSCRIBE packets from the client's own
		// store, which a new client per connection does not have.
		SetCleanSession(!o.Persistent).
		SetAutoReconnect(false).SetConnectRetry(false).
		// MQTT 3.1.1, explicitly: otherwise paho retries any failed attempt (even a reset
		// connection) as MQTT 3.1 within the same Connect, and a 3.1 CONNACK has no
		// session-present flag, so a resumed session would look lost.
		SetProtocolVersion(4).
		SetKeepAlive(o.KeepAlive).SetConnectTimeout(o.ConnectTimeout).SetWriteTimeout(o.ConnectTimeout).
		// One goroutine calls observe in arrival order, and paho acknowledges a message only
		// after observe returned.
		SetOrderMatters(true).
		// Every message goes to this handler (subscriptions carry none): queued messages of
		// a resumed session arrive before the SUBSCRIBE is acknowledged, and paho neither
		// delivers nor acknowledges a message no route takes; and a message that matches
		// two filters must be observed once, where paho would call one handler per route.
		SetDefaultPublishHandler(observe).
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
		// goroutine of this client outlives Run.
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
	resumed := tok.(*mqtt.ConnectToken).SessionPresent()
	t.Connected(resumed)
	log := o.Log.With("broker", broker)
	log.Info("mqtt connected", "client_id", o.ClientID, "session_present", resumed)
	if o.Persistent && !resumed {
		// Harmless on the first connection; after a loss it means that what was published
		// in between never reaches the verifier and will show as gaps.
		log.Warn("broker holds no session for the verifier: messages published while it was disconnected are not delivered")
	}

	filters := make(map[string]byte, len(o.Topics))
	for _, f := range o.Topics {
		filters[f] = 1
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
		switch {
		case qos == 0x80:
			client.Disconnect(0)
			return true, &fatalError{fmt.Errorf("subscribe to %q on %s: refused by the broker", f, broker)}
		case qos == 0:
			log.Warn("broker granted QoS 0: messages may be lost between broker and verifier", "topic", f)
		}
	}
	log.Info("subscribed", "topics", o.Topics)
	if o.Subscribed != nil {
		o.Subscribed()
	}

	select {
	case err := <-lost:
		client.Disconnect(0)
		return true, fmt.Errorf("connection lost: %w", err)
	case <-ctx.Done():
		client.Disconnect(250)
		log.Info("mqtt disconnected")
		return true, nil
	}
}
