package opcua

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestPKI_OwnCertificate(t *testing.T) {
	dir := t.TempDir()
	p, err := OpenPKI(dir, "urn:floorlink:gw-7")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	der, key, err := p.OwnCertificate(now)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if c.URIs[0].String() != "urn:floorlink:gw-7" || c.SignatureAlgorithm != x509.SHA256WithRSA || key.N.BitLen() != 2048 {
		t.Errorf("certificate: uri %v, alg %v, key %d bits", c.URIs, c.SignatureAlgorithm, key.N.BitLen())
	}
	for _, f := range []string{OwnCertFile, OwnKeyFile} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v mode %v, want 0600", f, err, st.Mode().Perm())
		}
	}
	again, _, err := p.OwnCertificate(now)
	if err != nil || !bytes.Equal(again, der) {
		t.Errorf("second OwnCertificate created a new certificate (err %v)", err)
	}
	info, err := p.Show()
	if err != nil || info.ApplicationURI != "urn:floorlink:gw-7" || info.Thumbprint != thumbprint(der) {
		t.Errorf("Show: %+v %v", info, err)
	}
	if info.ExpiresWithin(now, ExpiryWarning) || !info.ExpiresWithin(now.Add(CertValidity-ExpiryWarning+time.Hour), ExpiryWarning) {
		t.Errorf("ExpiresWithin wrong for validity %v..%v", info.NotBefore, info.NotAfter)
	}
	var pemOut bytes.Buffer
	if err := p.Export(&pemOut, "pem"); err != nil {
		t.Fatal(err)
	}
	if b, _ := pem.Decode(pemOut.Bytes()); b == nil || !bytes.Equal(b.Bytes, der) {
		t.Errorf("Export pem does not hold the certificate")
	}
	renewed, err := p.Renew(now)
	if err != nil || renewed.Thumbprint == info.Thumbprint {
		t.Errorf("Renew: %+v %v, want a new certificate", renewed, err)
	}
	// A different application URI replaces the certificate: servers refuse a mismatch.
	p2, _ := OpenPKI(dir, "urn:floorlink:gw-8")
	der2, _, _ := p2.OwnCertificate(now)
	if c2, _ := x509.ParseCertificate(der2); c2.URIs[0].String() != "urn:floorlink:gw-8" {
		t.Errorf("certificate kept a stale URI %v", c2.URIs)
	}
}

func selfSigned(t *testing.T, ca *x509.Certificate, caKey *rsa.PrivateKey, isCA bool, notAfter time.Time) (*x509.Certificate, *rsa.PrivateKey) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "srv/1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter, IsCA: isCA, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign}
	parent, pkey := tmpl, key
	if ca != nil {
		parent, pkey = ca, caKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, pkey)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, key
}

func TestPKI_VerifyServer(t *testing.T) {
	now := time.Now()
	t.Run("unknown then trusted", func(t *testing.T) {
		p, _ := OpenPKI(t.TempDir(), "urn:x")
		srv, _ := selfSigned(t, nil, nil, false, now.Add(time.Hour))
		err := p.VerifyServer("opc.tcp://plc:4840", srv.Raw, false, now)
		var ue *UntrustedCertError
		if !errors.As(err, &ue) || filepath.Base(ue.Rejected) != "srv_1 ["+thumbprint(srv.Raw)+"].der" {
			t.Fatalf("got %v, want an UntrustedCertError with the file name", err)
		}
		if err := os.Rename(ue.Rejected, ue.Trusted); err != nil {
			t.Fatal(err)
		}
		if err := p.VerifyServer("opc.tcp://plc:4840", srv.Raw, false, now); err != nil {
			t.Errorf("after the move: %v", err)
		}
		if err := p.VerifyServer("opc.tcp://plc:4840", srv.Raw, false, now.Add(2*time.Hour)); !errors.Is(err, ErrServerCertInvalid) {
			t.Errorf("expired pinned certificate: %v, want ErrServerCertInvalid", err)
		}
	})
	t.Run("trust on first use", func(t *testing.T) {
		dir := t.TempDir()
		p, _ := OpenPKI(dir, "urn:x")
		srv, _ := selfSigned(t, nil, nil, false, now.Add(time.Hour))
		if err := p.VerifyServer("opc.tcp://plc:4840", srv.Raw, true, now); err != nil {
			t.Fatal(err)
		}
		if err := p.VerifyServer("opc.tcp://plc:4840", srv.Raw, false, now); err != nil {
			t.Errorf("stored by TOFU, then: %v", err)
		}
	})
	t.Run("CA in issuers, PEM", func(t *testing.T) {
		dir := t.TempDir()
		p, _ := OpenPKI(dir, "urn:x")
		ca, caKey := selfSigned(t, nil, nil, true, now.Add(24*time.Hour))
		srv, _ := selfSigned(t, ca, caKey, false, now.Add(time.Hour))
		pemCA := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})
		if err := os.WriteFile(filepath.Join(dir, IssuersDir, "ca.pem"), pemCA, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := p.VerifyServer("opc.tcp://plc:4840", srv.Raw, false, now); err != nil {
			t.Errorf("CA-signed: %v", err)
		}
		if err := p.VerifyServer("opc.tcp://plc:4840", srv.Raw, false, now.Add(2*time.Hour)); !errors.Is(err, ErrServerCertInvalid) {
			t.Errorf("expired CA-signed: %v, want ErrServerCertInvalid", err)
		}
		other, _ := selfSigned(t, nil, nil, false, now.Add(time.Hour))
		if err := p.VerifyServer("opc.tcp://plc:4840", other.Raw, false, now); !errors.Is(err, ErrServerCertUntrusted) {
			t.Errorf("unrelated certificate: %v, want ErrServerCertUntrusted", err)
		}
	})
}
