package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/floorlink/floorlink/agent/config"
	"github.com/floorlink/floorlink/watch"
)

func newWatchCommand(stdout, stderr io.Writer) *cobra.Command {
	var (
		cfgPath                        string
		brokers, topics                []string
		caFile, certFile, keyFile, sni string
		username, passwordFile         string
		clientID, format, template     string
		group                          string
		plain, noColor                 bool
		duration, interval             time.Duration
	)
	cmd := &cobra.Command{
		Use:   "watch (-c FILE | --broker URL...)",
		Short: "Show what Floorlink gateways publish to a broker, live",
		Long: "watch subscribes to a broker's Floorlink topics and shows, refreshed every second, each site's\n" +
			"gateways (status, buffer, publish rate), lines, devices with their latest values and quality,\n" +
			"assets with their KPIs, and each one's last event. With -c it takes the broker, TLS,\n" +
			"credentials and topic template from an agent's configuration, and lists that gateway's devices\n" +
			"before they publish. In a terminal the view redraws in place; otherwise (a pipe, a file) it\n" +
			"prints plain key=value lines, one per gateway, device and asset, then a summary line, at every\n" +
			"refresh (docs/operations.md has the format). It runs until SIGINT or --duration. Exit 2 on bad\n" +
			"usage or a broker that refuses the connection.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := watch.SubscribeOptions{Brokers: brokers, Filters: topics, ClientID: clientID, Username: username}
			var cfg *config.File
			insecure := false
			if cfgPath != "" {
				var err error
				if cfg, err = config.Load(cfgPath, config.Options{}); cfg == nil {
					return err
				}
				if len(opts.Brokers) == 0 {
					opts.Brokers = cfg.MQTT.Brokers
				}
				if opts.Username == "" {
					opts.Username, opts.Password = cfg.MQTT.Username, cfg.MQTT.Password.Reveal()
				}
				if t := cfg.MQTT.TLS; t != nil {
					caFile, certFile, keyFile, sni = or(caFile, t.CAFile), or(certFile, t.CertFile), or(keyFile, t.KeyFile), or(sni, t.ServerName)
					insecure = t.InsecureSkipVerify
				}
				format, template = cmp.Or(format, cfg.MQTT.Format), cmp.Or(template, cfg.MQTT.TopicTemplate)
				group = cmp.Or(group, cfg.MQTT.GroupID)
			}
			if len(opts.Brokers) == 0 {
				return usageError{errors.New("watch: give -c FILE or --broker URL")}
			}
			if passwordFile != "" {
				b, err := os.ReadFile(passwordFile)
				if err != nil {
					return usageError{fmt.Errorf("watch: --password-file: %w", err)}
				}
				opts.Password = strings.TrimRight(string(b), "\r\n")
			}
			if caFile != "" || certFile != "" || keyFile != "" || sni != "" || insecure {
				t, err := clientTLS(caFile, certFile, keyFile, sni)
				if err != nil {
					return usageError{fmt.Errorf("watch: %w", err)}
				}
				t.InsecureSkipVerify = insecure
				opts.TLS = t
			}
			dec, err := decoder(format, template, group)
			if err != nil {
				return usageError{fmt.Errorf("watch: %w", err)}
			}

			terminal := !plain && watch.IsTerminal(stdout)
			filters := topics
			if len(filters) == 0 {
				filters = dec.Filters()
			}
			header := []string{"topics " + strings.Join(filters, " ")}
			if cfgPath != "" {
				header[0] = "config " + cfgPath + "   " + header[0]
			}
			model := watch.New(watch.Options{Decoder: dec, Header: header,
				Color: terminal && !noColor && os.Getenv("NO_COLOR") == ""}) // https://no-color.org
			if cfg != nil {
				for _, d := range cfg.Devices {
					model.Expect(watch.Expected{Site: cfg.Gateway.Site, Area: cmp.Or(d.Area, cfg.Gateway.Area),
						Line: cmp.Or(d.Line, cfg.Gateway.Line), Gateway: cfg.Gateway.ID, Device: d.Name})
				}
			}
			// In a terminal the frame shows the connection's state; log lines would tear it.
			logTo := io.Discard
			if !terminal {
				logTo = stderr
			}
			opts.Log = slog.New(slog.NewTextHandler(logTo, &slog.HandlerOptions{Level: slog.LevelWarn}))

			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if duration > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, duration)
				defer cancel()
			}
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			var subscribeErr error
			var wg sync.WaitGroup
			wg.Go(func() {
				subscribeErr = watch.Subscribe(ctx, opts, model)
				cancel() // a broker that refuses us ends the view
			})
			runErr := model.Run(ctx, stdout, watch.RunOptions{Terminal: terminal, Size: watch.TerminalSize(stdout), Interval: interval})
			cancel()
			wg.Wait()
			if terminal {
				fmt.Fprintln(stdout) // the prompt below the last frame
			}
			if subscribeErr != nil {
				return usageError{fmt.Errorf("watch: %w", subscribeErr)}
			}
			return runErr
		},
	}
	f := cmd.Flags()
	f.StringVarP(&cfgPath, "config", "c", "", "take brokers, TLS, credentials, topic template and devices from this agent configuration")
	f.StringArrayVar(&brokers, "broker", nil, "broker URL (repeatable; overrides the config's)")
	f.StringArrayVar(&topics, "topic", nil, "topic filter (repeatable; default: the format's, floorlink/v1/# for JSON)")
	f.StringVar(&format, "format", "", "json or sparkplug (default: the config's mqtt.format)")
	f.StringVar(&group, "group", "", "Sparkplug group to show (default: the config's mqtt.group_id, else every group)")
	f.StringVar(&template, "topic-template", "", "the gateways' mqtt.topic_template (default: the config's, else "+watch.DefaultTopicTemplate+")")
	f.StringVar(&caFile, "ca", "", "PEM file of the CA that signs the broker's certificate")
	f.StringVar(&certFile, "cert", "", "client certificate (PEM)")
	f.StringVar(&keyFile, "key", "", "client key (PEM)")
	f.StringVar(&sni, "server-name", "", "name expected in the broker's certificate")
	f.StringVar(&username, "username", "", "broker user name")
	f.StringVar(&passwordFile, "password-file", "", "file holding the broker password")
	f.StringVar(&clientID, "client-id", "", "MQTT client id (default floorlink-watch- and a random suffix)")
	f.BoolVar(&plain, "plain", false, "print plain lines even in a terminal")
	f.BoolVar(&noColor, "no-color", false, "no colors in the terminal (also NO_COLOR)")
	f.DurationVar(&duration, "duration", 0, "stop after this long (default: at SIGINT)")
	f.DurationVar(&interval, "interval", time.Second, "time between refreshes")
	return cmd
}

// decoder is the view's reader of format; the model and its renderings are the same for both.
func decoder(format, template, group string) (watch.Decoder, error) {
	switch strings.ToLower(format) {
	case "", "json":
		return watch.NewJSON(template)
	case "sparkplug":
		return watch.NewSparkplug(group), nil
	}
	return nil, fmt.Errorf("format %q: want json or sparkplug", format)
}
