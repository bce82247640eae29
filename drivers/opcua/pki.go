package opcua

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Files and directories of a PKI directory (drivers.OPCUAOptions.PKIDir), as OPC UA servers lay
// out theirs:
//
//	own/cert.der          our application instance certificate (DER), 0600
//	own/private/key.pem   its RSA key, PKCS#1 PEM ("RSA PRIVATE KEY"), 0600
//	trusted/              server certificates we trust (pinned self-signed, or CA certificates)
//	issuers/              CA certificates that may sign server certificates
//	rejected/             server certificates we refused, to be moved into trusted/ by hand
//
// Certificates in trusted/ and issuers/ may be DER (.der, .cer) or PEM (.pem, .crt).
const (
	OwnCertFile = "own/cert.der"
	OwnKeyFile  = "own/private/key.pem"
	TrustedDir  = "trusted"
	IssuersDir  = "issuers"
	RejectedDir = "rejected"
)

// CertValidity is the validity of the application instance certificate New creates or Renew
// replaces: two years. The agent warns ExpiryWarning before its end.
const (
	CertValidity  = 2 * 365 * 24 * time.Hour
	ExpiryWarning = 30 * 24 * time.Hour
)

// Certificate errors callers branch on.
var (
	// ErrServerCertUntrusted: the server's certificate is in neither trusted/ nor signed by a
	// CA of trusted/ or issuers/. The error is an *UntrustedCertError.
	ErrServerCertUntrusted = errors.New("server certificate not trusted")
	// ErrServerCertInvalid: the server's certificate is trusted but expired, not yet valid or
	// unparsable.
	ErrServerCertInvalid = errors.New("server certificate invalid")
)

// UntrustedCertError is a server certificate refused because nothing trusts it. Rejected is
// the file it was saved to, Trusted where to move it to trust it.
type UntrustedCertError struct {
	Endpoint   string
	Subject    string
	Thumbprint string
	Rejected   string
	Trusted    string
}

func (e *UntrustedCertError) Error() string {
	return fmt.Sprintf("server certificate of %s is not trusted (subject %q, SHA-1 thumbprint %s): saved as %s; if it is your server's certificate, move it to %s and the driver connects on its next attempt (or set trust_on_first_use: true while commissioning)",
		e.Endpoint, e.Subject, e.Thumbprint, e.Rejected, e.Trusted)
}

// Is makes errors.Is(err, ErrServerCertUntrusted) true.
func (e *UntrustedCertError) Is(target error) bool { return target == ErrServerCertUntrusted }

// CertInfo describes a certificate for `floorlink opcua cert show`.
type CertInfo struct {
	// Path is the file it was read from.
	Path           string
	Subject        string
	ApplicationURI string
	DNSNames       []string
	NotBefore      time.Time
	NotAfter       time.Time
	// Thumbprint is the SHA-1 of the DER bytes in hex, as OPC UA tools print it.
	Thumbprint string
}

// ExpiresWithin reports whether the certificate's validity ends before now+d (or has ended).
func (c CertInfo) ExpiresWithin(now time.Time, d time.Duration) bool {
	return !now.Add(d).Before(c.NotAfter)
}

// PKI is a PKI directory. Its methods are safe to call from several goroutines as far as the
// file system is: two processes renewing at once may leave either certificate.
type PKI struct {
	dir    string
	appURI string
}

// OpenPKI opens (creating its subdirectories, 0700) the PKI directory dir for a client with
// application URI appURI. It does not create the certificate: OwnCertificate does on first use.
func OpenPKI(dir, appURI string) (*PKI, error) {
	if dir == "" {
		return nil, errors.New("open pki: empty directory")
	}
	for _, sub := range []string{"own/private", TrustedDir, IssuersDir, RejectedDir} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("open pki: %w", err)
		}
	}
	return &PKI{dir: dir, appURI: appURI}, nil
}

// Dir is the PKI directory.
func (p *PKI) Dir() string { return p.dir }

// OwnCertificate returns the application instance certificate (DER) and key, creating them
// when missing: RSA 2048, SHA-256, self-signed, URI SAN the application URI, DNS SAN the host
// name, valid CertValidity from now. A certificate whose URI differs from the application URI
// is replaced: servers refuse it (BadCertificateUriInvalid).
func (p *PKI) OwnCertificate(now time.Time) ([]byte, *rsa.PrivateKey, error) {
	der, key, err := p.load()
	if err == nil {
		c, perr := x509.ParseCertificate(der)
		if perr == nil && len(c.URIs) > 0 && c.URIs[0].String() == p.appURI {
			return der, key, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, nil, err
	}
	return p.create(now)
}

// Renew replaces the application instance certificate and key with new ones valid from now.
// Servers that trusted the old certificate must be given the new one.
func (p *PKI) Renew(now time.Time) (CertInfo, error) {
	der, _, err := p.create(now)
	if err != nil {
		return CertInfo{}, err
	}
	return certInfo(filepath.Join(p.dir, OwnCertFile), der)
}

// Show describes the application instance certificate; it fails with os.ErrNotExist before
// the first OwnCertificate or Renew.
func (p *PKI) Show() (CertInfo, error) {
	path := filepath.Join(p.dir, OwnCertFile)
	der, err := os.ReadFile(path)
	if err != nil {
		return CertInfo{}, fmt.Errorf("show certificate: %w", err)
	}
	return certInfo(path, der)
}

// Export writes the application instance certificate to w as "pem" or "der", for the
// server's administrator to trust.
func (p *PKI) Export(w io.Writer, format string) error {
	der, err := os.ReadFile(filepath.Join(p.dir, OwnCertFile))
	if err != nil {
		return fmt.Errorf("export certificate: %w", err)
	}
	switch format {
	case "pem":
		return pem.Encode(w, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	case "der":
		_, err := w.Write(der)
		return err
	}
	return fmt.Errorf("export certificate: format %q: want pem or der", format)
}

func (p *PKI) load() ([]byte, *rsa.PrivateKey, error) {
	der, err := os.ReadFile(filepath.Join(p.dir, OwnCertFile))
	if err != nil {
		return nil, nil, err
	}
	kpath := filepath.Join(p.dir, OwnKeyFile)
	b, err := os.ReadFile(kpath)
	if err != nil {
		return nil, nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "RSA PRIVATE KEY" {
		return nil, nil, fmt.Errorf("load key %s: want a PEM block RSA PRIVATE KEY", kpath)
	}
	key, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("load key %s: %w", kpath, err)
	}
	return der, key, nil
}

func (p *PKI) create(now time.Time) ([]byte, *rsa.PrivateKey, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, fmt.Errorf("create certificate: %w", err)
	}
	uri, err := url.Parse(p.appURI)
	if err != nil {
		return nil, nil, fmt.Errorf("create certificate: application uri %q: %w", p.appURI, err)
	}
	host, _ := os.Hostname()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("create certificate: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "floorlink", Organization: []string{"Floorlink"}},
		NotBefore:    now.Add(-time.Hour), // tolerate a server clock slightly behind ours
		NotAfter:     now.Add(CertValidity),
		// Part 6 §6.2.2: an application instance certificate signs and encrypts.
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment | x509.KeyUsageKeyEncipherment |
			x509.KeyUsageDataEncipherment | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{uri},
		SignatureAlgorithm:    x509.SHA256WithRSA,
	}
	if host != "" {
		tmpl.DNSNames = []string{host}
	}
	tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create certificate: %w", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := writeFile(filepath.Join(p.dir, OwnKeyFile), keyPEM); err != nil {
		return nil, nil, err
	}
	if err := writeFile(filepath.Join(p.dir, OwnCertFile), der); err != nil {
		return nil, nil, err
	}
	return der, key, nil
}

// writeFile replaces path atomically with mode 0600.
func writeFile(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// VerifyServer decides whether to talk to the server that presented der at endpoint: it is
// accepted when trusted/ holds the same certificate (pinning), or when it chains to a CA
// certificate of trusted/ or issuers/ (intermediates from issuers/); either way it must be
// valid at now. An unknown certificate is saved to rejected/ and refused with an
// *UntrustedCertError, unless tofu (trust on first use) is set: then it is saved to trusted/
// and accepted.
func (p *PKI) VerifyServer(endpoint string, der []byte, tofu bool, now time.Time) error {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("%w: server certificate of %s: %v", ErrServerCertInvalid, endpoint, err)
	}
	trusted, err := readCerts(filepath.Join(p.dir, TrustedDir))
	if err != nil {
		return err
	}
	issuers, err := readCerts(filepath.Join(p.dir, IssuersDir))
	if err != nil {
		return err
	}
	checkTime := func() error {
		if now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
			return fmt.Errorf("%w: server certificate of %s (subject %q) is valid from %s to %s, not now (%s)", ErrServerCertInvalid,
				endpoint, cert.Subject.CommonName, cert.NotBefore.Format(time.RFC3339), cert.NotAfter.Format(time.RFC3339), now.Format(time.RFC3339))
		}
		return nil
	}
	for _, t := range trusted {
		if bytes.Equal(t.Raw, der) {
			return checkTime()
		}
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	anyCA := false
	for _, c := range append(trusted, issuers...) {
		if c.IsCA {
			anyCA = true
			if bytes.Equal(c.RawIssuer, c.RawSubject) {
				roots.AddCert(c)
			} else {
				inter.AddCert(c)
			}
		}
	}
	if anyCA {
		_, verr := cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		if verr == nil {
			return nil
		}
		var inv x509.CertificateInvalidError
		if errors.As(verr, &inv) && inv.Reason == x509.Expired {
			return fmt.Errorf("%w: server certificate of %s: %v", ErrServerCertInvalid, endpoint, verr)
		}
	}
	name := certFileName(cert, der)
	if tofu {
		if err := writeFile(filepath.Join(p.dir, TrustedDir, name), der); err != nil {
			return err
		}
		return checkTime()
	}
	rejected := filepath.Join(p.dir, RejectedDir, name)
	if err := writeFile(rejected, der); err != nil {
		return err
	}
	return &UntrustedCertError{Endpoint: endpoint, Subject: cert.Subject.CommonName, Thumbprint: thumbprint(der),
		Rejected: rejected, Trusted: filepath.Join(p.dir, TrustedDir, name)}
}

// certFileName names a server certificate file as UA servers do: "<CN> [<thumbprint>].der",
// with the CN cut to safe characters.
func certFileName(c *x509.Certificate, der []byte) string {
	cn := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '_'
	}, c.Subject.CommonName)
	if len(cn) > 64 {
		cn = cn[:64]
	}
	if cn == "" {
		cn = "server"
	}
	return cn + " [" + thumbprint(der) + "].der"
}

func thumbprint(der []byte) string {
	s := sha1.Sum(der)
	return strings.ToUpper(hex.EncodeToString(s[:]))
}

// readCerts reads every certificate file of dir, DER or PEM (several blocks allowed).
func readCerts(dir string) ([]*x509.Certificate, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("read certificates: %w", err)
	}
	var out []*x509.Certificate
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		path := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read certificates: %w", err)
		}
		if bytes.HasPrefix(bytes.TrimSpace(b), []byte("-----BEGIN")) {
			for rest := b; ; {
				var block *pem.Block
				block, rest = pem.Decode(rest)
				if block == nil {
					break
				}
				if block.Type != "CERTIFICATE" {
					continue
				}
				if c, err := x509.ParseCertificate(block.Bytes); err == nil {
					out = append(out, c)
				} else {
					return nil, fmt.Errorf("read certificate %s: %w", path, err)
				}
			}
			continue
		}
		c, err := x509.ParseCertificate(b)
		if err != nil {
			return nil, fmt.Errorf("read certificate %s: %w", path, err)
		}
		out = append(out, c)
	}
	return out, nil
}

func certInfo(path string, der []byte) (CertInfo, error) {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return CertInfo{}, fmt.Errorf("read certificate %s: %w", path, err)
	}
	info := CertInfo{Path: path, Subject: c.Subject.String(), DNSNames: c.DNSNames, NotBefore: c.NotBefore, NotAfter: c.NotAfter,
		Thumbprint: thumbprint(der)}
	if len(c.URIs) > 0 {
		info.ApplicationURI = c.URIs[0].String()
	}
	return info, nil
}

// utf8BOM starts files some Windows editors save.
const utf8BOM = "\xef\xbb\xbf"

// loadUserCert reads the X.509 user identity of auth certificate: the certificate, DER or PEM
// (its first CERTIFICATE block), and its RSA key, PEM, PKCS#1 ("RSA PRIVATE KEY") or PKCS#8
// ("PRIVATE KEY"), as the docs promise. tls.LoadX509KeyPair, used before, took PEM only, so a
// DER certificate (what most OPC UA tools export) never connected. The key must belong to the
// certificate: the server checks the token's signature with the certificate's public key.
func loadUserCert(certFile, keyFile string) (*x509.Certificate, *rsa.PrivateKey, error) {
	b, err := os.ReadFile(certFile)
	if err != nil {
		return nil, nil, fmt.Errorf("read user certificate: %w", err)
	}
	// PEM wherever a block is: openssl's pkcs12 export puts "Bag Attributes" lines before it,
	// and Windows editors a byte order mark at the start. DER otherwise.
	b = bytes.TrimPrefix(b, []byte(utf8BOM))
	der := b
	if block, _ := pem.Decode(b); block != nil {
		der = nil
		for rest := b; der == nil; {
			var block *pem.Block
			if block, rest = pem.Decode(rest); block == nil {
				return nil, nil, fmt.Errorf("read user certificate %s: no PEM block CERTIFICATE", certFile)
			}
			if block.Type == "CERTIFICATE" {
				der = block.Bytes
			}
		}
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("read user certificate %s: %w", certFile, err)
	}
	b, err = os.ReadFile(keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("read user key: %w", err)
	}
	b = bytes.TrimPrefix(b, []byte(utf8BOM))
	var key *rsa.PrivateKey
	for rest := b; key == nil; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			return nil, nil, fmt.Errorf("read user key %s: want a PEM block RSA PRIVATE KEY or PRIVATE KEY (unencrypted)", keyFile)
		}
		switch block.Type {
		case "RSA PRIVATE KEY":
			if key, err = x509.ParsePKCS1PrivateKey(block.Bytes); err != nil {
				return nil, nil, fmt.Errorf("read user key %s: %w", keyFile, err)
			}
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				return nil, nil, fmt.Errorf("read user key %s: %w", keyFile, err)
			}
			var ok bool
			if key, ok = k.(*rsa.PrivateKey); !ok {
				return nil, nil, fmt.Errorf("read user key %s: a %T: OPC UA user tokens need an RSA key", keyFile, k)
			}
		}
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, nil, fmt.Errorf("user key %s does not belong to user certificate %s", keyFile, certFile)
	}
	return cert, key, nil
}
