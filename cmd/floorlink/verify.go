package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/floorlink/floorlink/agent/config"
	"github.com/floorlink/floorlink/verify"
)

func newVerifyCommand(stdout, stderr io.Writer) *cobra.Command {
	var (
		cfgPath                        string
		brokers, topics, expects       []string
		caFile, certFile, keyFile, sni string
		username, passwordFile         string
		clientID                       string
		persistent, fromStart, asJSON  bool
		duration, interval             time.Duration
	)
	cmd := &cobra.Command{
		Use:   "verify (-c FILE | --broker URL...) [--duration D]",
		Short: "Subscribe to gateways' records and report gaps, duplicates and conflicts by seq",
		Long: "verify subscribes to the record topics and accounts every message by (gateway, epoch, seq):\n" +
			"gaps (missing seqs), announced drops, duplicates, conflicts (one seq, two payloads),\n" +
			"out-of-order and historical counts. It runs until SIGINT or --duration, then prints the\n" +
			"report. Exit 0 when nothing is missing or conflicting, 1 when something is (or nothing\n" +
			"arrived), 2 on bad usage or a broker that refuses the connection.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := verify.Options{Brokers: brokers, Topics: topics, ClientID: clientID, Persistent: persistent,
				Username: username, Log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
			var site string
			if cfgPath != "" {
				cfg, err := config.Load(cfgPath, config.Options{})
				if cfg == nil {
					return err
				}
				if len(opts.Brokers) == 0 {
					opts.Brokers = cfg.MQTT.Brokers
				}
				if opts.Username == "" {
					opts.Username = cfg.MQTT.Username
					opts.Password = cfg.MQTT.Password.Reveal()
				}
				site = cfg.Gateway.Site
				if t := cfg.MQTT.TLS; t != nil {
					caFile, certFile, keyFile, sni = or(caFile, t.CAFile), or(certFile, t.CertFile), or(keyFile, t.KeyFile), or(sni, t.ServerName)
				}
			}
			if len(opts.Brokers) == 0 {
				return usageError{errors.New("verify: give -c FILE or --broker URL")}
			}
			if persistent && clientID == "" {
				return usageError{errors.New("verify: --persistent needs --client-id: the broker keeps the session under it")}
			}
			if passwordFile != "" {
				b, err := os.ReadFile(passwordFile)
				if err != nil {
					return usageError{fmt.Errorf("verify: --password-file: %w", err)}
				}
				opts.Password = strings.TrimRight(string(b), "\r\n")
			}
			if caFile != "" || certFile != "" || sni != "" {
				t, err := clientTLS(caFile, certFile, keyFile, sni)
				if err != nil {
					return usageError{err}
				}
				opts.TLS = t
			}
			if len(opts.Topics) == 0 && site != "" {
				opts.Topics = []string{"floorlink/v1/" + site + "/#"}
			}
			tracker := verify.NewTracker(verify.TrackerOptions{FromStart: fromStart})
			for _, e := range expects {
				gw, epoch, through, err := parseExpect(e)
				if err != nil {
					return usageError{err}
				}
				tracker.Expect(gw, epoch, through)
			}

			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if duration > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, duration)
				defer cancel()
			}
			done := make(chan error, 1)
			go func() { done <- verify.Run(ctx, opts, tracker) }()
			tick := time.NewTicker(interval)
			defer tick.Stop()
			var runErr error
		wait:
			for {
				select {
				case runErr = <-done:
					break wait
				case <-tick.C:
					r := tracker.Report()
					var recv, missing uint64
					for _, s := range r.Streams {
						recv += s.Received
						missing += s.Missing
					}
					fmt.Fprintf(stderr, "verify: %d messages in %d streams, %d seqs missing so far\n", recv, len(r.Streams), missing)
				}
			}
			if runErr != nil && !errors.Is(runErr, context.Canceled) && !errors.Is(runErr, context.DeadlineExceeded) {
				return usageError{fmt.Errorf("verify: %w", runErr)}
			}
			report := tracker.Report()
			if asJSON {
				b, err := report.MarshalJSON()
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "%s\n", b)
			} else if err := report.WriteText(stdout); err != nil {
				return err
			}
			if len(report.Streams) == 0 {
				return errors.New("verify: no record arrived: a report of nothing proves nothing")
			}
			if !report.OK() {
				return fmt.Errorf("verify: %s", strings.Join(report.Problems(), "; "))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&cfgPath, "config", "c", "", "take brokers, TLS and credentials from this agent configuration")
	f.StringArrayVar(&brokers, "broker", nil, "broker URL (repeatable; overrides the config's)")
	f.StringArrayVar(&topics, "topic", nil, "topic filter (repeatable; default floorlink/v1/{site}/# with -c, else floorlink/v1/#)")
	f.StringVar(&caFile, "ca", "", "PEM file of the CA that signs the broker's certificate")
	f.StringVar(&certFile, "cert", "", "client certificate (PEM)")
	f.StringVar(&keyFile, "key", "", "client key (PEM)")
	f.StringVar(&sni, "server-name", "", "name expected in the broker's certificate")
	f.StringVar(&username, "username", "", "broker user name")
	f.StringVar(&passwordFile, "password-file", "", "file holding the broker password")
	f.StringVar(&clientID, "client-id", "", "MQTT client id (required with --persistent)")
	f.BoolVar(&persistent, "persistent", false, "keep the session on the broker while disconnected (clean session off)")
	f.BoolVar(&fromStart, "from-start", false, "count seqs before the first one received as missing")
	f.StringArrayVar(&expects, "expect", nil, "GATEWAY:EPOCH:SEQ: every seq through SEQ must arrive (repeatable)")
	f.DurationVar(&duration, "duration", 0, "stop after this long (default: at SIGINT)")
	f.DurationVar(&interval, "interval", 10*time.Second, "progress line interval on stderr")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func parseExpect(s string) (gateway, epoch string, through uint64, err error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return "", "", 0, fmt.Errorf("--expect %q: want GATEWAY:EPOCH:SEQ", s)
	}
	through, err = strconv.ParseUint(parts[2], 10, 64)
	if err != nil {
		return "", "", 0, fmt.Errorf("--expect %q: seq: %w", s, err)
	}
	return parts[0], parts[1], through, nil
}

func clientTLS(caFile, certFile, keyFile, serverName string) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--ca: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca: %s holds no PEM certificate", caFile)
		}
	}
	if certFile != "" || keyFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("--cert/--key: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}
