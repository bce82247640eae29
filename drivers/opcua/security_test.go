package opcua

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/floorlink/floorlink/drivers"
	"github.com/floorlink/floorlink/drivers/opcua/internal/uatest"
)

// firstDown waits for the first disconnected event and returns its error.
func firstDown(t *testing.T, c *collector) error {
	t.Helper()
	var err error
	waitFor(t, 30*time.Second, func() error {
		ev := c.eventsOf(drivers.EventDisconnected)
		if len(ev) == 0 {
			return errors.New("no disconnected event yet")
		}
		err = ev[0].Err
		return nil
	})
	return err
}

// TestDriver_NodeOPCUA_Security: Basic256Sha256 SignAndEncrypt with a username. The unknown
// server certificate is refused with the documented message and saved under rejected/; moved
// into trusted/, the same options connect and deliver; a wrong password gives ErrUserRejected.
func TestDriver_NodeOPCUA_Security(t *testing.T) {
	srv := uatest.Start(t, uatest.Options{Secure: true, Users: map[string]string{"operator": "s3cret"}})
	pki := t.TempDir()
	dev := typesDevice(srv.Endpoint, ModePoll)
	dev.OPCUA.SecurityPolicy, dev.OPCUA.SecurityMode = "Basic256Sha256", "SignAndEncrypt"
	dev.OPCUA.Auth, dev.OPCUA.Username, dev.OPCUA.Password = AuthUsername, "operator", "s3cret"
	dev.OPCUA.PKIDir, dev.OPCUA.ApplicationURI = pki, "urn:floorlink:test-gw"
	opts := Options{MinBackoff: 200 * time.Millisecond, MaxBackoff: time.Second}

	d, err := New(dev, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{}
	run(t, d, c)
	err = firstDown(t, c)
	var ue *UntrustedCertError
	if !errors.As(err, &ue) || !errors.Is(err, ErrServerCertUntrusted) {
		t.Fatalf("first error %v, want an *UntrustedCertError", err)
	}
	if !strings.HasPrefix(ue.Rejected, filepath.Join(pki, "rejected")+"/") || !strings.HasPrefix(ue.Trusted, filepath.Join(pki, "trusted")+"/") {
		t.Errorf("rejected %s, trusted %s: want files in %s/rejected and %s/trusted", ue.Rejected, ue.Trusted, pki, pki)
	}
	for _, want := range []string{"is not trusted", "saved as " + ue.Rejected, "move it to " + ue.Trusted} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	t.Logf("documented message: %v", err)
	if s, ok := c.last(0); !ok || s.Quality != drivers.QualityBad || s.Reason != "server certificate not trusted" {
		t.Errorf("sample while refused: %+v, want bad \"server certificate not trusted\"", s)
	}
	// Our own certificate was created on first use, 0600, and is kept.
	info, err := os.Stat(filepath.Join(pki, OwnKeyFile))
	if err == nil && info.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v, want 0600", info.Mode().Perm())
	}

	if err := os.Rename(ue.Rejected, ue.Trusted); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, func() error { return goodValue(c, 5, "-123456789") })
	if len(c.eventsOf(drivers.EventConnected)) != 1 {
		t.Errorf("connected events %d, want 1", len(c.eventsOf(drivers.EventConnected)))
	}

	t.Run("wrong password", func(t *testing.T) {
		bad := dev
		bad.OPCUA.Password = "wrong"
		d, err := New(bad, opts, nil)
		if err != nil {
			t.Fatal(err)
		}
		c := &collector{}
		run(t, d, c)
		err = firstDown(t, c)
		if !errors.Is(err, ErrUserRejected) || !strings.Contains(err.Error(), `refused user "operator" for device "press-1" (BadUserAccessDenied)`) {
			t.Fatalf("error %v, want ErrUserRejected naming the user, the device and BadUserAccessDenied", err)
		}
		t.Logf("documented message: %v", err)
	})
	t.Run("endpoint not offered", func(t *testing.T) {
		none := dev
		none.OPCUA.SecurityPolicy, none.OPCUA.SecurityMode = "None", ""
		d, err := New(none, opts, nil)
		if err != nil {
			t.Fatal(err)
		}
		c := &collector{}
		run(t, d, c)
		err = firstDown(t, c)
		if !errors.Is(err, ErrEndpointNotOffered) || !strings.Contains(err.Error(), "the server offers: Basic256Sha256/SignAndEncrypt (") {
			t.Fatalf("error %v, want ErrEndpointNotOffered listing Basic256Sha256/SignAndEncrypt", err)
		}
		t.Logf("documented message: %v", err)
	})
	t.Run("unreachable", func(t *testing.T) {
		off := dev
		off.Address = fmt.Sprintf("opc.tcp://127.0.0.1:%d", closedPort(t))
		d, err := New(off, opts, nil)
		if err != nil {
			t.Fatal(err)
		}
		c := &collector{}
		run(t, d, c)
		err = firstDown(t, c)
		if !errors.Is(err, ErrUnreachable) {
			t.Fatalf("error %v, want ErrUnreachable", err)
		}
		t.Logf("documented message: %v", err)
	})
}

// TestDriver_NodeOPCUA_Policies: every modern policy in both secure modes connects and reads,
// anonymously, with the server's certificate trusted on first use (and kept in trusted/).
func TestDriver_NodeOPCUA_Policies(t *testing.T) {
	policies := []string{"Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss"}
	srv := uatest.Start(t, uatest.Options{Secure: true, Policies: policies, Modes: []string{"Sign", "SignAndEncrypt"}})
	pki := t.TempDir()
	for _, p := range policies {
		for _, m := range []string{"Sign", "SignAndEncrypt"} {
			t.Run(p+"/"+m, func(t *testing.T) {
				dev := typesDevice(srv.Endpoint, ModePoll)
				dev.OPCUA.SecurityPolicy, dev.OPCUA.SecurityMode = p, m
				dev.OPCUA.PKIDir, dev.OPCUA.TrustOnFirstUse, dev.OPCUA.ApplicationURI = pki, true, "urn:floorlink:test-gw"
				d, err := New(dev, Options{}, nil)
				if err != nil {
					t.Fatal(err)
				}
				c := &collector{}
				run(t, d, c)
				waitFor(t, 20*time.Second, func() error { return goodValue(c, 5, "-123456789") })
			})
		}
	}
	if trusted, _ := filepath.Glob(filepath.Join(pki, TrustedDir, "*.der")); len(trusted) != 1 {
		t.Errorf("trusted/ holds %v, want the server's certificate once", trusted)
	}
}
