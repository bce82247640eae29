package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/floorlink/floorlink/agent"
	"github.com/floorlink/floorlink/agent/config"
	"github.com/floorlink/floorlink/drivers"
	"github.com/floorlink/floorlink/drivers/opcua"
)

func newOPCUACommand(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "opcua",
		Short: "OPC UA tools: browse a server, manage the gateway's application certificate",
	}
	cmd.AddCommand(newOPCUABrowseCommand(stdout), newOPCUACertCommand(stdout))
	return cmd
}

// opcuaSecurity are the connection flags of the opcua commands, or the device of a config
// file (-c FILE --device NAME) they take them from.
type opcuaSecurity struct {
	cfgPath, device string
	policy, mode    string
	auth, username  string
	passwordFile    string
	certFile        string
	keyFile         string
	pkiDir          string
	tofu            bool
}

func (s *opcuaSecurity) flags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVarP(&s.cfgPath, "config", "c", "", "take the security settings of a device of this config `FILE`")
	f.StringVar(&s.device, "device", "", "the opcua device of -c FILE (default: the only one, or the first secured one)")
	f.StringVar(&s.policy, "security-policy", "", "None, Basic256Sha256, Aes128_Sha256_RsaOaep or Aes256_Sha256_RsaPss (default None)")
	f.StringVar(&s.mode, "security-mode", "", "None, Sign or SignAndEncrypt (default: the most secure offered)")
	f.StringVar(&s.auth, "auth", "", "anonymous, username or certificate (default anonymous)")
	f.StringVar(&s.username, "username", "", "user name for --auth username")
	f.StringVar(&s.passwordFile, "password-file", "", "`FILE` holding the password for --auth username (never a flag: ps shows flags)")
	f.StringVar(&s.certFile, "user-cert-file", "", "user certificate for --auth certificate")
	f.StringVar(&s.keyFile, "user-key-file", "", "user key for --auth certificate")
	f.StringVar(&s.pkiDir, "pki-dir", "", "PKI directory of the application certificate and trusted server certificates (default: the device's pki_dir, or ./pki)")
	f.BoolVar(&s.tofu, "trust-on-first-use", false, "trust an unknown server certificate and store it in trusted/ (commissioning only)")
}

// options builds a device's connection options: from the config's device when -c is given,
// then the flags that are set on top (flag > config > default). endpoint is "" when the
// caller takes the device's.
func (s *opcuaSecurity) options(cmd *cobra.Command) (opts drivers.OPCUAOptions, endpoint string, err error) {
	opts.PKIDir = "pki"
	if s.cfgPath != "" {
		dc, gw, err := s.configDevice()
		if err != nil {
			return opts, "", err
		}
		endpoint = dc.Address
		opts = drivers.OPCUAOptions{SecurityPolicy: dc.SecurityPolicy, SecurityMode: dc.SecurityMode,
			Auth: dc.Auth, Username: dc.Username, Password: dc.Password.Reveal(),
			UserCertFile: dc.UserCertFile, UserKeyFile: dc.UserKeyFile, PKIDir: dc.PKIDir,
			TrustOnFirstUse: dc.TrustOnFirstUse, ApplicationURI: "urn:floorlink:" + gw}
	} else if s.device != "" {
		return opts, "", usageError{errors.New("--device needs -c FILE")}
	}
	f := cmd.Flags()
	set := func(name string, dst *string, v string) {
		if f.Changed(name) {
			*dst = v
		}
	}
	set("security-policy", &opts.SecurityPolicy, s.policy)
	set("security-mode", &opts.SecurityMode, s.mode)
	set("auth", &opts.Auth, s.auth)
	set("username", &opts.Username, s.username)
	set("user-cert-file", &opts.UserCertFile, s.certFile)
	set("user-key-file", &opts.UserKeyFile, s.keyFile)
	set("pki-dir", &opts.PKIDir, s.pkiDir)
	if f.Changed("trust-on-first-use") {
		opts.TrustOnFirstUse = s.tofu
	}
	if s.passwordFile != "" {
		b, err := os.ReadFile(s.passwordFile)
		if err != nil {
			return opts, "", usageError{fmt.Errorf("--password-file: %w", err)}
		}
		opts.Password = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	}
	return opts, endpoint, nil
}

// configDevice finds the opcua device of -c FILE: --device, else the only opcua device, else
// the first with a security policy (whose PKI directory the cert commands mean).
func (s *opcuaSecurity) configDevice() (config.Device, string, error) {
	cfg, err := agent.LoadConfig(s.cfgPath, config.Options{})
	if err != nil {
		return config.Device{}, "", err
	}
	var found []config.Device
	for _, d := range cfg.Devices {
		if d.Protocol == "opcua" && (s.device == "" || d.Name == s.device) {
			found = append(found, d)
		}
	}
	switch {
	case len(found) == 0 && s.device != "":
		return config.Device{}, "", usageError{fmt.Errorf("%s has no opcua device %q", s.cfgPath, s.device)}
	case len(found) == 0:
		return config.Device{}, "", usageError{fmt.Errorf("%s has no opcua device", s.cfgPath)}
	}
	for _, d := range found {
		if d.SecurityPolicy != "None" {
			return d, cfg.Gateway.ID, nil
		}
	}
	return found[0], cfg.Gateway.ID, nil
}

// browseOptions are the flags of opcua browse.
type browseOptions struct {
	node    string
	depth   int
	yaml    bool
	timeout time.Duration
	sec     opcuaSecurity
}

func newOPCUABrowseCommand(stdout io.Writer) *cobra.Command {
	var o browseOptions
	cmd := &cobra.Command{
		Use:   "browse [opc.tcp://HOST:PORT] [--node ID] [--depth N] [--yaml] [security flags | -c FILE --device NAME]",
		Short: "Walk a server's address space and print its variables, or a tag list to paste",
		Long: "browse walks the address space of the OPC UA server from --node (default: the Objects\n" +
			"folder, i=85) down --depth levels and prints every variable with its node id, data type,\n" +
			"access level and current value. --yaml prints a `tags:` list ready to paste into an opcua\n" +
			"device instead (variables whose type Floorlink cannot read are left as comments).\n\n" +
			"Security is None and anonymous unless flags say otherwise; -c FILE takes the endpoint and\n" +
			"the security settings of an opcua device of a config file (--device NAME when it has\n" +
			"several), flags then override them. A server certificate not yet trusted is saved under\n" +
			"the PKI directory's rejected/ and refused, as the agent does: the error says which file to move.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, endpoint, err := o.sec.options(cmd)
			if err != nil {
				return err
			}
			if len(args) == 1 {
				endpoint = args[0]
			}
			if endpoint == "" {
				return usageError{errors.New("browse: give the endpoint opc.tcp://HOST:PORT, or -c FILE")}
			}
			if o.depth < 1 {
				return usageError{fmt.Errorf("--depth %d: want 1 or more", o.depth)}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			ctx, cancel := context.WithTimeout(ctx, o.timeout)
			defer cancel()
			nodes, err := opcua.Browse(ctx, endpoint, opts, o.node, o.depth)
			if err != nil {
				return err
			}
			if o.yaml {
				return writeTagsYAML(stdout, endpoint, nodes)
			}
			return writeNodes(stdout, nodes)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.node, "node", "", "node `ID` to start from (default i=85, the Objects folder)")
	f.IntVar(&o.depth, "depth", opcua.DefaultBrowseDepth, "levels to walk down")
	f.BoolVar(&o.yaml, "yaml", false, "print a tags: list for a device instead of a table")
	f.DurationVar(&o.timeout, "timeout", time.Minute, "bound on the whole walk")
	o.sec.flags(cmd)
	return cmd
}

// writeNodes prints the variables as a table.
func writeNodes(w io.Writer, nodes []opcua.Node) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE ID\tTYPE\tACCESS\tVALUE\tPATH")
	for _, n := range nodes {
		typ := n.UAType
		if typ == "" {
			typ = "?"
		}
		if n.Array {
			typ += "[]"
		}
		value := n.Value.String()
		if n.Value.Kind() == drivers.KindString {
			value = n.Value.Str()
		}
		if n.Status != "" {
			value = n.Status
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", n.NodeID, typ, n.AccessLevel, oneLine(value, 60), n.Path)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%d variables\n", len(nodes))
	return err
}

// oneLine keeps a value on its row: control characters escaped, long text cut.
func oneLine(s string, max int) string {
	q := strconv.Quote(s)
	if q[1:len(q)-1] != s {
		s = q
	}
	if r := []rune(s); len(r) > max {
		s = string(r[:max-1]) + "…"
	}
	return s
}

// writeTagsYAML prints a tags: list for an opcua device. Names are the browse paths with "."
// for "/", unique within the list; every string is double-quoted with "$" doubled, so that the
// config's ${VAR} expansion leaves it as browsed.
func writeTagsYAML(w io.Writer, endpoint string, nodes []opcua.Node) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# %d variables browsed from %s on %s\n", len(nodes), endpoint, time.Now().UTC().Format(time.RFC3339))
	b.WriteString("tags:\n")
	used := map[string]bool{}
	for _, n := range nodes {
		if n.DataType == "" {
			fmt.Fprintf(&b, "  # %s (%s): data type %s cannot be a tag\n", yamlQuote(n.NodeID), n.Path, n.UAType)
			continue
		}
		name := strings.ReplaceAll(n.Path, "/", ".")
		if name == "" {
			name = n.NodeID
		}
		if len(name) > 255 {
			name = name[len(name)-255:]
		}
		for k := 2; used[name]; k++ {
			name = fmt.Sprintf("%s_%d", strings.ReplaceAll(n.Path, "/", "."), k)
		}
		used[name] = true
		fmt.Fprintf(&b, "  - {name: %s, address: %s, type: %s}", yamlQuote(name), yamlQuote(n.NodeID), n.DataType)
		switch {
		case n.Array:
			fmt.Fprintf(&b, " # %s array, published as JSON text", n.UAType)
		case uaTypeNames[n.DataType] != n.UAType:
			fmt.Fprintf(&b, " # %s", n.UAType) // an enumeration, a subtype: say what the server calls it
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// uaTypeNames are the OPC UA names of the tag types; browse --yaml comments on any other.
var uaTypeNames = map[drivers.DataType]string{
	drivers.TypeBool: "Boolean", drivers.TypeInt8: "SByte", drivers.TypeUint8: "Byte",
	drivers.TypeInt16: "Int16", drivers.TypeUint16: "UInt16", drivers.TypeInt32: "Int32", drivers.TypeUint32: "UInt32",
	drivers.TypeInt64: "Int64", drivers.TypeUint64: "UInt64", drivers.TypeFloat32: "Float", drivers.TypeFloat64: "Double",
	drivers.TypeString: "String", drivers.TypeDateTime: "DateTime", drivers.TypeBytes: "ByteString",
}

func yamlQuote(s string) string { return strconv.Quote(strings.ReplaceAll(s, "$", "$$")) }

// certOptions are the flags of opcua cert.
type certOptions struct {
	cfgPath, device string
	pkiDir, appURI  string
	format, out     string
}

func newOPCUACertCommand(stdout io.Writer) *cobra.Command {
	var o certOptions
	cmd := &cobra.Command{
		Use:   "cert show|renew|export [-c FILE [--device NAME] | --pki-dir DIR]",
		Short: "Show, renew or export the gateway's OPC UA application certificate",
		Long: "The agent creates its application instance certificate (RSA 2048, SHA-256, valid two\n" +
			"years, ApplicationURI urn:floorlink:<gateway id>) in the PKI directory on its first secured\n" +
			"connection. show prints it; renew replaces it (and its key) with a new one, which every\n" +
			"server that trusted the old one must be given; export writes it (--format der or pem, to\n" +
			"--out FILE or stdout) for a server's administrator to trust.\n\n" +
			"-c FILE takes the PKI directory of the config's opcua device (--device NAME when the\n" +
			"devices use different ones); --pki-dir DIR names it directly.",
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"show", "renew", "export"},
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := o.open()
			if err != nil {
				return err
			}
			switch args[0] {
			case "show":
				info, err := p.Show()
				if errors.Is(err, fs.ErrNotExist) {
					return fmt.Errorf("no application certificate in %s yet: the agent creates it on its first secured connection (or run floorlink opcua cert renew)", p.Dir())
				}
				if err != nil {
					return err
				}
				return writeCertInfo(stdout, info, time.Now())
			case "renew":
				info, err := p.Renew(time.Now())
				if err != nil {
					return err
				}
				if err := writeCertInfo(stdout, info, time.Now()); err != nil {
					return err
				}
				_, err = fmt.Fprintln(stdout, "renewed: give the new certificate (floorlink opcua cert export) to every server that trusted the old one, then restart the agent")
				return err
			case "export":
				if o.format != "pem" && o.format != "der" {
					return usageError{fmt.Errorf("--format %q: want pem or der", o.format)}
				}
				if o.out == "" {
					return p.Export(stdout, o.format)
				}
				f, err := os.OpenFile(o.out, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
				if err != nil {
					return err
				}
				if err := p.Export(f, o.format); err != nil {
					f.Close()
					return err
				}
				return f.Close()
			}
			return usageError{fmt.Errorf("cert %q: want show, renew or export", args[0])}
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.cfgPath, "config", "c", "", "take the PKI directory of an opcua device of this config `FILE`")
	f.StringVar(&o.device, "device", "", "the opcua device of -c FILE (default: the first secured one)")
	f.StringVar(&o.pkiDir, "pki-dir", "", "the PKI `DIR`ectory (instead of -c)")
	f.StringVar(&o.appURI, "application-uri", "", "ApplicationURI of a renewed certificate with --pki-dir (default urn:floorlink:<host name>)")
	f.StringVar(&o.format, "format", "pem", "export as pem or der")
	f.StringVar(&o.out, "out", "", "export to `FILE` instead of stdout")
	return cmd
}

// open opens the PKI directory the flags name.
func (o *certOptions) open() (*opcua.PKI, error) {
	switch {
	case o.cfgPath != "" && o.pkiDir != "":
		return nil, usageError{errors.New("give -c FILE or --pki-dir DIR, not both")}
	case o.pkiDir != "":
		uri := o.appURI
		if uri == "" {
			host, _ := os.Hostname()
			uri = "urn:floorlink:" + host
		}
		return opcua.OpenPKI(o.pkiDir, uri)
	case o.cfgPath == "":
		return nil, usageError{errors.New("give -c FILE (the config of the agent) or --pki-dir DIR")}
	}
	s := opcuaSecurity{cfgPath: o.cfgPath, device: o.device}
	dc, gw, err := s.configDevice()
	if err != nil {
		return nil, err
	}
	return opcua.OpenPKI(dc.PKIDir, "urn:floorlink:"+gw)
}

func writeCertInfo(w io.Writer, c opcua.CertInfo, now time.Time) error {
	left := c.NotAfter.Sub(now)
	state := fmt.Sprintf("valid, %d days left", int(left.Hours()/24))
	switch {
	case left <= 0:
		state = "EXPIRED: run floorlink opcua cert renew"
	case c.ExpiresWithin(now, opcua.ExpiryWarning):
		state = fmt.Sprintf("expires in %d days: run floorlink opcua cert renew", int(left.Hours()/24))
	}
	_, err := fmt.Fprintf(w, "file:            %s\nsubject:         %s\napplication uri: %s\ndns names:       %s\nvalid from:      %s\nvalid until:     %s (%s)\nthumbprint:      %s\n",
		c.Path, c.Subject, c.ApplicationURI, strings.Join(c.DNSNames, ", "),
		c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339), state, c.Thumbprint)
	return err
}
