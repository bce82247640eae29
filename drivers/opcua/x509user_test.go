package opcua

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/floorlink/floorlink/drivers"
	"github.com/floorlink/floorlink/drivers/opcua/internal/uatest"
)

// userCert is an X.509 user identity written into a test's directory: the certificate as PEM
// and as DER, and its key as PKCS#8 PEM (what openssl writes today).
type userCert struct {
	PEM, DER, Key string
	Subject       string // the certificate's subject, as x509.Name.String prints it
}

// newUserCert creates a self-signed RSA 2048 user certificate for cn in dir, the kind an
// administrator issues to a person or a gateway for OPC UA user authentication.
func newUserCert(t *testing.T, dir, cn string) userCert {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"Floorlink test"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		// What OPC UA user certificates carry (Part 6, 6.2.2): the signature proves possession.
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment | x509.KeyUsageKeyEncipherment | x509.KeyUsageDataEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	p8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	uc := userCert{
		PEM: filepath.Join(dir, cn+".pem"), DER: filepath.Join(dir, cn+".der"), Key: filepath.Join(dir, cn+".key"),
		Subject: tmpl.Subject.String(),
	}
	for path, b := range map[string][]byte{
		uc.PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		uc.DER: der,
		uc.Key: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8}),
	} {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return uc
}

// TestDriver_NodeOPCUA_X509User: an X.509 user identity on Basic256Sha256 SignAndEncrypt.
// node-opcua trusts one user certificate and refuses anonymous sessions: that certificate
// (PEM or DER, as the docs promise) reads good values; another one is refused with
// ErrUserRejected, naming the device and the certificate, and the tags go bad "user rejected".
func TestDriver_NodeOPCUA_X509User(t *testing.T) {
	dir := t.TempDir()
	trusted := newUserCert(t, dir, "operator-badge")
	stranger := newUserCert(t, dir, "stranger-badge")
	srv := uatest.Start(t, uatest.Options{Secure: true, UserCert: trusted.DER, Policies: []string{"Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss"}})
	pki := t.TempDir()
	device := func(cert, key string) drivers.Device {
		dev := typesDevice(srv.Endpoint, ModePoll)
		dev.OPCUA.SecurityPolicy, dev.OPCUA.SecurityMode = "Basic256Sha256", "SignAndEncrypt"
		dev.OPCUA.Auth, dev.OPCUA.UserCertFile, dev.OPCUA.UserKeyFile = AuthCertificate, cert, key
		dev.OPCUA.PKIDir, dev.OPCUA.TrustOnFirstUse, dev.OPCUA.ApplicationURI = pki, true, "urn:floorlink:test-gw"
		return dev
	}
	opts := Options{MinBackoff: 200 * time.Millisecond, MaxBackoff: time.Second}

	for _, tc := range []struct{ name, cert, policy string }{
		{"trusted PEM", trusted.PEM, "Basic256Sha256"},
		{"trusted DER", trusted.DER, "Basic256Sha256"},
		{"trusted Aes128_Sha256_RsaOaep", trusted.PEM, "Aes128_Sha256_RsaOaep"},
		{"trusted Aes256_Sha256_RsaPss", trusted.PEM, "Aes256_Sha256_RsaPss"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dev := device(tc.cert, trusted.Key)
			dev.OPCUA.SecurityPolicy = tc.policy
			d, err := New(dev, opts, nil)
			if err != nil {
				t.Fatal(err)
			}
			c := &collector{}
			run(t, d, c)
			waitFor(t, 30*time.Second, func() error {
				if ev := c.eventsOf(drivers.EventDisconnected); len(ev) > 0 {
					return errors.New("disconnected: " + ev[0].Err.Error())
				}
				return goodValue(c, 5, "-123456789") // Int32
			})
			if n := len(c.eventsOf(drivers.EventConnected)); n != 1 {
				t.Errorf("connected events %d, want 1", n)
			}
		})
	}

	t.Run("untrusted", func(t *testing.T) {
		d, err := New(device(stranger.PEM, stranger.Key), opts, nil)
		if err != nil {
			t.Fatal(err)
		}
		c := &collector{}
		run(t, d, c)
		err = firstDown(t, c)
		if !errors.Is(err, ErrUserRejected) {
			t.Fatalf("error %v, want ErrUserRejected", err)
		}
		for _, want := range []string{`device "press-1"`, `refused the user certificate "` + stranger.Subject + `"`, "(BadIdentityTokenRejected)", stranger.PEM} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q lacks %q", err, want)
			}
		}
		t.Logf("documented message: %v", err)
		if s, ok := c.last(0); !ok || s.Quality != drivers.QualityBad || s.Reason != "user rejected" {
			t.Errorf("sample while refused: %+v, want bad \"user rejected\"", s)
		}
		if len(c.eventsOf(drivers.EventConnected)) != 0 {
			t.Errorf("connected with an untrusted user certificate")
		}
	})
}

// TestLoadUserCert_Files: the user certificate may be DER or PEM and its key PKCS#1 or PKCS#8
// PEM; anything else, or a key of another certificate, is refused with a message naming the
// file.
func TestLoadUserCert_Files(t *testing.T) {
	dir := t.TempDir()
	a, b := newUserCert(t, dir, "a"), newUserCert(t, dir, "b")
	write := func(name string, data []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	keyPEM, _ := os.ReadFile(a.Key)
	block, _ := pem.Decode(keyPEM)
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pkcs1 := write("a-pkcs1.key", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k.(*rsa.PrivateKey))}))
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalPKCS8PrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	ecKey := write("ec.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER}))
	encrypted := write("enc.key", pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1, 2, 3}}))
	garbage := write("garbage.der", []byte("not a certificate"))
	certPEM, _ := os.ReadFile(a.PEM)
	// openssl pkcs12 -nokeys writes attribute lines before the block; some editors a BOM.
	bagged := write("a-bag.pem", append([]byte("Bag Attributes\n    localKeyID: 01 00 00 00\nsubject=/CN=a\nissuer=/CN=a\n"), certPEM...))
	bom := write("a-bom.pem", append([]byte("\xef\xbb\xbf"), certPEM...))

	for _, tc := range []struct {
		name, cert, key string
		want            string // "" for success, else a part of the error
	}{
		{"PEM and PKCS#8", a.PEM, a.Key, ""},
		{"DER and PKCS#1", a.DER, pkcs1, ""},
		{"PEM after bag attributes", bagged, a.Key, ""},
		{"PEM after a byte order mark", bom, a.Key, ""},
		{"key of another certificate", a.PEM, b.Key, "user key " + b.Key + " does not belong to user certificate " + a.PEM},
		{"EC key", a.PEM, ecKey, "read user key " + ecKey + ": a *ecdsa.PrivateKey: OPC UA user tokens need an RSA key"},
		{"encrypted key", a.PEM, encrypted, "read user key " + encrypted + ": want a PEM block RSA PRIVATE KEY or PRIVATE KEY (unencrypted)"},
		{"PEM without certificate", a.Key, a.Key, "read user certificate " + a.Key + ": no PEM block CERTIFICATE"},
		{"not a certificate", garbage, a.Key, "read user certificate " + garbage + ": x509: "},
		{"missing file", filepath.Join(dir, "none.der"), a.Key, "read user certificate: open " + filepath.Join(dir, "none.der") + ": no such file or directory"},
		{"missing key", a.PEM, filepath.Join(dir, "none.key"), "read user key: open " + filepath.Join(dir, "none.key") + ": no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cert, key, err := loadUserCert(tc.cert, tc.key)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if !key.PublicKey.Equal(cert.PublicKey) {
					t.Errorf("key does not match the certificate")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
