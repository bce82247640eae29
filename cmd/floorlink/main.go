// Command floorlink is the shop-floor edge agent: it polls PLCs, stores every record durably and
// publishes telemetry over MQTT. See README.md and docs/.
//
// Exit codes: 0 ok, 1 runtime failure, 2 bad configuration or usage.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/floorlink/floorlink/agent"
	"github.com/floorlink/floorlink/agent/config"
)

// Set at build time with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = ""
)

// usageError marks errors that exit 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	root := newRootCommand(stdout, stderr)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0
	}
	var ce *config.Error
	var ue usageError
	var pe *fs.PathError
	switch {
	case errors.As(err, &ce):
		// Problems already name the file, line and field: print them as they are, one a line.
		fmt.Fprintln(stderr, err)
		return 2
	case errors.As(err, &ue), errors.As(err, &pe) && pe.Op == "open",
		// cobra reports an unknown subcommand as a plain error.
		strings.HasPrefix(err.Error(), "unknown command "):
		fmt.Fprintln(stderr, "floorlink:", err)
		return 2
	}
	fmt.Fprintln(stderr, "floorlink:", err)
	return 1
}

func newRootCommand(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "floorlink",
		Short:         "Shop-floor edge agent: PLCs to durable buffer to MQTT",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newRunCommand(stderr), newValidateCommand(stdout), newBufferCommand(stdout),
		newVerifyCommand(stdout, stderr), newWatchCommand(stdout, stderr), newVersionCommand(stdout),
		newModbusCommand(stdout), newOPCUACommand(stdout))
	return root
}

func newRunCommand(stderr io.Writer) *cobra.Command {
	var (
		cfgPath   string
		logLevel  string
		logFormat string
		dataDir   string
		httpAddr  string

		clockStart, clockEpoch string
		clockSpeed             float64
		watchConfig            time.Duration
	)
	cmd := &cobra.Command{
		Use:   "run -c FILE",
		Short: "Run the agent on a configuration file until SIGINT or SIGTERM",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfgPath == "" {
				return usageError{errors.New("run: -c FILE is required")}
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return usageError{fmt.Errorf("--log-level: %w", err)}
			}
			hopts := &slog.HandlerOptions{Level: level}
			var handler slog.Handler
			switch logFormat {
			case "text":
				handler = slog.NewTextHandler(stderr, hopts)
			case "json": // one object a line, for a log shipper
				handler = slog.NewJSONHandler(stderr, hopts)
			default:
				return usageError{fmt.Errorf("--log-format %q: want text or json", logFormat)}
			}
			log := slog.New(handler)
			slog.SetDefault(log)

			cfg, err := loadLean(cfgPath)
			if err != nil {
				return err
			}
			overrides := func(cfg *config.File) {
				if dataDir != "" { // a flag wins over the file, which wins over the default
					cfg.Gateway.DataDir = dataDir
				}
				if cmd.Flags().Changed("http") {
					cfg.HTTP.Listen = httpAddr
				}
			}
			overrides(cfg)
			var options []agent.Option
			if clock, ok, err := parseSimClock(clockStart, clockEpoch, clockSpeed); err != nil {
				return usageError{err}
			} else if ok {
				log.Warn("running on a simulated clock: samples and KPI windows are stamped with it", "start", clockStart, "speed", clockSpeed)
				options = append(options, agent.WithClock(clock.now))
			}
			a, err := agent.New(cfg, log, options...)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			r := &reloader{agent: a, path: cfgPath, overrides: overrides, watch: watchConfig, log: log}
			go r.run(ctx)
			// Under systemd (Type=notify): READY, the watchdog, STOPPING.
			ntf, err := newNotifier(os.Getenv, os.Getpid())
			if err != nil {
				log.Warn("not notifying systemd", "err", err)
			}
			return runNotified(ctx, ntf, log, a.Alive, a.Run)
		},
	}
	cmd.Flags().StringVarP(&cfgPath, "config", "c", "", "configuration file")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	cmd.Flags().StringVar(&logFormat, "log-format", "text", "text (key=value) or json, one record a line on stderr")
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "directory of the buffer file (overrides gateway.data_dir)")
	cmd.Flags().StringVar(&httpAddr, "http", "", "address of the HTTP listener, \"\" to disable (overrides http.listen)")
	// A simulated clock for tests and demos of whole shifts with plcsim's flags of the same
	// names; hidden, because a plant never wants it.
	cmd.Flags().DurationVar(&watchConfig, "watch-config", 0, "reload the configuration when the file changes, looking this often (e.g. 2s); SIGHUP always reloads")
	cmd.Flags().StringVar(&clockStart, "clock-start", "", "simulated time at --clock-epoch (RFC 3339)")
	cmd.Flags().StringVar(&clockEpoch, "clock-epoch", "", "real time at which the simulated clock reads --clock-start (default: now)")
	cmd.Flags().Float64Var(&clockSpeed, "clock-speed", 1, "simulated seconds per real second")
	for _, f := range []string{"clock-start", "clock-epoch", "clock-speed"} {
		_ = cmd.Flags().MarkHidden(f)
	}
	return cmd
}

// loadLean loads the configuration with the collector kept tight: the YAML parser allocates
// about 200 times the file's size in short-lived nodes (118 MB for a 10,000-tag file), and with
// the default GOGC the heap, and the resident memory a small gateway has to spare, would peak
// at twice what is live. The memory is given back to the OS before the agent starts.
func loadLean(path string) (*config.File, error) {
	old := debug.SetGCPercent(20)
	cfg, err := agent.LoadConfig(path, config.Options{})
	debug.SetGCPercent(old)
	debug.FreeOSMemory()
	return cfg, err
}

func newValidateCommand(stdout io.Writer) *cobra.Command {
	var (
		paths []string
		print bool
	)
	cmd := &cobra.Command{
		Use:   "validate [-c] FILE...",
		Short: "Check configuration files; print every problem with file:line:col",
		Long: "Check configuration files as `run` would, including each driver's checks of addresses\n" +
			"and types, and print every problem of every file. Exit 0 when all are valid, 2 otherwise.",
		RunE: func(_ *cobra.Command, args []string) error {
			paths = append(paths, args...)
			if len(paths) == 0 {
				return usageError{errors.New("validate: give at least one FILE")}
			}
			var errs []error
			for _, p := range paths {
				cfg, err := agent.LoadConfig(p, config.Options{})
				if err != nil {
					errs = append(errs, err)
					continue
				}
				tags := 0
				for _, d := range cfg.Devices {
					tags += len(d.Tags)
				}
				fmt.Fprintf(stdout, "%s: ok (gateway %s, %d devices, %d tags)\n", p, cfg.Gateway.ID, len(cfg.Devices), tags)
				if print {
					// Secrets redact themselves when marshalled.
					b, err := json.MarshalIndent(cfg, "", "  ")
					if err != nil {
						return err
					}
					fmt.Fprintf(stdout, "%s\n", b)
				}
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().StringArrayVarP(&paths, "config", "c", nil, "configuration file (repeatable; files may also be arguments)")
	cmd.Flags().BoolVar(&print, "print", false, "print each valid file's effective configuration (defaults applied, secrets redacted) as JSON")
	return cmd
}

func newVersionCommand(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print version, commit and Go version",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			c, goVersion := commit, "unknown"
			if bi, ok := debug.ReadBuildInfo(); ok {
				goVersion = bi.GoVersion
				for _, s := range bi.Settings {
					if s.Key == "vcs.revision" && c == "" {
						c = s.Value
					}
				}
			}
			fmt.Fprintf(stdout, "floorlink %s commit %s %s\n", version, c, goVersion)
			return nil
		},
	}
}
