package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/floorlink/floorlink/agent"
	"github.com/floorlink/floorlink/agent/config"
	"github.com/floorlink/floorlink/agent/publish"
	"github.com/floorlink/floorlink/agent/record"
	"github.com/floorlink/floorlink/buffer"
)

func newBufferCommand(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "buffer",
		Short: "Inspect and maintain the buffer file of a stopped agent",
	}
	cmd.AddCommand(newBufferStatsCommand(stdout), newBufferDumpCommand(stdout), newBufferCompactCommand(stdout),
		newBufferBackupCommand(stdout))
	return cmd
}

// bufferPath reads the config for gateway.data_dir only: a file whose devices have problems
// still names its buffer.
func bufferPath(cfgPath string) (string, *config.File, error) {
	if cfgPath == "" {
		return "", nil, usageError{errors.New("-c FILE is required")}
	}
	cfg, err := config.Load(cfgPath, config.Options{})
	if cfg == nil {
		return "", nil, err
	}
	return filepath.Join(cfg.Gateway.DataDir, agent.BufferFile), cfg, nil
}

// openStopped opens the buffer read-only, with the message an operator needs when the agent is
// running.
func openStopped(path string, cfg *config.File) (*buffer.Buffer, error) {
	b, err := buffer.OpenReadOnly(path)
	if errors.Is(err, buffer.ErrInUse) {
		return nil, fmt.Errorf("the agent is running on %s; the same figures are in its stats topic floorlink/v1/%s/gateway/%s/stats: %w",
			path, cfg.Gateway.Site, cfg.Gateway.ID, err)
	}
	return b, err
}

func newBufferStatsCommand(stdout io.Writer) *cobra.Command {
	var (
		cfgPath string
		asJSON  bool
	)
	cmd := &cobra.Command{
		Use:   "stats -c FILE",
		Short: "Print the buffer's depth, size, cursor and drops",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			path, cfg, err := bufferPath(cfgPath)
			if err != nil {
				return err
			}
			b, err := openStopped(path, cfg)
			if err != nil {
				return err
			}
			defer b.Close()
			st := b.Stats()
			out := struct {
				File         string  `json:"file"`
				Epoch        string  `json:"epoch"`
				Head         uint64  `json:"head"`
				Cursor       uint64  `json:"cursor"`
				Depth        uint64  `json:"depth"`
				Bytes        int64   `json:"bytes"`
				FileBytes    int64   `json:"file_bytes"`
				OldestAgeSec float64 `json:"oldest_age_seconds"`
				AgeFloor     uint64  `json:"age_floor"`
			}{path, b.Epoch(), st.Head, st.Cursor, st.Entries, st.Bytes, st.FileBytes, st.OldestAge.Seconds(), st.AgeFloor}
			if asJSON {
				enc := json.NewEncoder(stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			}
			fmt.Fprintf(stdout, "file        %s\nepoch       %s\nhead        %d\ncursor      %d\ndepth       %d records (%d bytes of payload)\nfile size   %d bytes\noldest      %s\n",
				out.File, out.Epoch, out.Head, out.Cursor, out.Depth, out.Bytes, out.FileBytes, st.OldestAge.Round(time.Second))
			return nil
		},
	}
	cmd.Flags().StringVarP(&cfgPath, "config", "c", "", "configuration file")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newBufferDumpCommand(stdout io.Writer) *cobra.Command {
	var (
		cfgPath string
		limit   int
		after   uint64
	)
	cmd := &cobra.Command{
		Use:   "dump -c FILE [--after SEQ] [--limit N]",
		Short: "Print stored records as JSON lines, in the MQTT contract's shape",
		Long: "Print the records waiting in the buffer of a stopped agent, oldest first, one JSON\n" +
			"message per line exactly as the publisher would send it (historical: true).",
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			path, cfg, err := bufferPath(cfgPath)
			if err != nil {
				return err
			}
			if limit < 1 {
				return usageError{fmt.Errorf("--limit %d: want at least 1", limit)}
			}
			b, err := openStopped(path, cfg)
			if err != nil {
				return err
			}
			defer b.Close()
			from := max(after, b.Cursor())
			w := bufio.NewWriter(stdout)
			var (
				dec  record.Decoder
				rec  record.Record
				line []byte
				n    int
			)
			for n < limit {
				got := 0
				err := b.ReadAfter(from, min(1000, limit-n), func(seq uint64, payload []byte) error {
					got++
					from = seq
					if err := dec.Decode(payload, &rec); err != nil {
						fmt.Fprintf(w, "{\"seq\":%d,\"error\":%q}\n", seq, err.Error())
						return nil
					}
					line = publish.AppendMessage(line[:0], cfg.Gateway.ID, b.Epoch(), seq, true, &rec)
					w.Write(append(line, '\n'))
					return nil
				})
				if err != nil {
					return err
				}
				if got == 0 {
					break
				}
				n += got
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVarP(&cfgPath, "config", "c", "", "configuration file")
	cmd.Flags().IntVar(&limit, "limit", 100, "most records to print")
	cmd.Flags().Uint64Var(&after, "after", 0, "print records after this seq (default: from the cursor)")
	return cmd
}

func newBufferCompactCommand(stdout io.Writer) *cobra.Command {
	var cfgPath string
	cmd := &cobra.Command{
		Use:   "compact -c FILE",
		Short: "Shrink the buffer file of a stopped agent after a long outage",
		Long: "bbolt never returns disk space: after an outage the file keeps its largest size.\n" +
			"compact rewrites it with only the records still waiting, then replaces it atomically.",
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			path, cfg, err := bufferPath(cfgPath)
			if err != nil {
				return err
			}
			before, after, err := buffer.CompactFile(path)
			if errors.Is(err, buffer.ErrInUse) {
				return fmt.Errorf("stop the agent of gateway %s first: %w", cfg.Gateway.ID, err)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s: %d bytes -> %d bytes\n", path, before, after)
			return nil
		},
	}
	cmd.Flags().StringVarP(&cfgPath, "config", "c", "", "configuration file")
	return cmd
}

func newBufferBackupCommand(stdout io.Writer) *cobra.Command {
	var cfgPath, out string
	cmd := &cobra.Command{
		Use:   "backup -c FILE -o OUT",
		Short: "Copy the buffer file consistently, from a running agent (over its HTTP listener) or a stopped one",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if out == "" {
				return usageError{errors.New("-o OUT is required")}
			}
			path, cfg, err := bufferPath(cfgPath)
			if err != nil {
				return err
			}
			tmp := out + ".partial"
			f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
			if err != nil {
				return err
			}
			defer os.Remove(tmp)
			n, err := backup(path, cfg, f)
			if cerr := f.Sync(); err == nil {
				err = cerr
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			// A backup that does not open is no backup.
			b, err := buffer.OpenReadOnly(tmp)
			if err != nil {
				return fmt.Errorf("check backup: %w", err)
			}
			head, cursor, epoch := b.Head(), b.Cursor(), b.Epoch()
			b.Close()
			if err := os.Rename(tmp, out); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s: %d bytes, epoch %s, head %d, cursor %d\n", out, n, epoch, head, cursor)
			return nil
		},
	}
	cmd.Flags().StringVarP(&cfgPath, "config", "c", "", "configuration file")
	cmd.Flags().StringVarP(&out, "output", "o", "", "file to write")
	return cmd
}

// backup copies the buffer: directly when the agent is stopped, else from the running agent's
// /api/v1/buffer/backup, which copies it inside one read transaction.
func backup(path string, cfg *config.File, w io.Writer) (int64, error) {
	b, err := buffer.OpenReadOnly(path)
	if err == nil {
		defer b.Close()
		return b.WriteTo(w)
	}
	if !errors.Is(err, buffer.ErrInUse) {
		return 0, err
	}
	if cfg.HTTP.Listen == "" {
		return 0, fmt.Errorf("the agent is running and has no HTTP listener (http.listen) to take a backup through: %w", err)
	}
	host, port, _ := net.SplitHostPort(cfg.HTTP.Listen)
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	resp, err := http.Get("http://" + net.JoinHostPort(host, port) + "/api/v1/buffer/backup")
	if err != nil {
		return 0, fmt.Errorf("take a backup through the running agent: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("take a backup through the running agent: %s", resp.Status)
	}
	return io.Copy(w, resp.Body)
}
