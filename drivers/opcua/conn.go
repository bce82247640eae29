package opcua

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/ua"
)

// Connection errors callers branch on (errors.Is); the error's text says what to do. Events and
// logs carry the full text; bad samples carry the short reason of each (see reasonFor).
var (
	// ErrUnreachable: no OPC UA server answered at the endpoint URL (refused, no route, name
	// not resolved, or no answer within the device's timeout).
	ErrUnreachable = errors.New("server unreachable")
	// ErrEndpointNotOffered: the server offers no endpoint with the configured security policy
	// and mode, or none accepting the configured user token; the error lists what it offers.
	ErrEndpointNotOffered = errors.New("endpoint not offered")
	// ErrCertificateRejected: the server refused our application instance certificate; its
	// administrator must trust own/cert.der of the PKI directory.
	ErrCertificateRejected = errors.New("client certificate rejected by the server")
	// ErrUserRejected: the server refused the user identity (wrong username or password,
	// unknown user certificate, or a user not allowed to connect).
	ErrUserRejected = errors.New("user rejected by the server")
	// ErrConnectionLost: an established session failed: the connection dropped, a request timed
	// out, or the watchdog found a subscription silent.
	ErrConnectionLost = errors.New("connection lost")
)

// reasonFor is the Reason of the bad samples sent while a device is down because of err.
func reasonFor(err error) string {
	switch {
	case errors.Is(err, ErrUnreachable):
		return "unreachable"
	case errors.Is(err, ErrEndpointNotOffered):
		return "endpoint not offered"
	case errors.Is(err, ErrServerCertUntrusted):
		return "server certificate not trusted"
	case errors.Is(err, ErrServerCertInvalid):
		return "server certificate invalid"
	case errors.Is(err, ErrCertificateRejected):
		return "certificate rejected"
	case errors.Is(err, ErrUserRejected):
		return "user rejected"
	}
	return "disconnected"
}

// connect opens a new client and session to the device, on the endpoint the configuration
// selects, after checking the server's certificate. The returned channel reports the client's
// state changes; the caller closes the client.
func (d *Driver) connect(ctx context.Context) (*opcua.Client, <-chan opcua.ConnState, error) {
	c := &d.cfg
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	eps, err := opcua.GetEndpoints(ctx, c.endpoint, opcua.DialTimeout(c.timeout), opcua.RequestTimeout(c.timeout))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: get endpoints of %s: %w", ErrUnreachable, c.endpoint, err)
	}
	ep, err := selectEndpoint(eps, c.policy, c.mode, tokenType(c.auth))
	if err != nil {
		return nil, nil, fmt.Errorf("connect to %s: %w", c.endpoint, err)
	}

	opts := []opcua.Option{
		opcua.AutoReconnect(false), // see the package doc: a new client per reconnect
		opcua.DialTimeout(c.timeout),
		opcua.RequestTimeout(c.timeout),
		opcua.SessionTimeout(time.Minute),
		opcua.ApplicationName("Floorlink"),
		opcua.ProductURI("urn:floorlink"),
		opcua.SecurityPolicy(ep.SecurityPolicyURI),
		opcua.SecurityMode(ep.SecurityMode),
	}
	if c.policy != "None" || c.auth == AuthCertificate {
		if err := d.pki.VerifyServer(c.endpoint, ep.ServerCertificate, c.dev.OPCUA.TrustOnFirstUse, d.now()); err != nil {
			return nil, nil, err
		}
		der, key, err := d.pki.OwnCertificate(d.now())
		if err != nil {
			return nil, nil, fmt.Errorf("connect to %s: %w", c.endpoint, err)
		}
		// Certificate sets the session's ApplicationURI from the certificate's URI SAN; setting
		// it again would make node-opcua refuse the session (BadCertificateUriInvalid).
		opts = append(opts, opcua.Certificate(der), opcua.PrivateKey(key))
	} else {
		opts = append(opts, opcua.ApplicationURI(c.appURI))
	}
	// The Auth* option must precede SecurityFromEndpoint, which then takes the server's
	// PolicyID for that token type.
	u := user{who: "the anonymous user", check: "check the anonymous user's rights on the server, or set auth username or certificate"}
	switch c.auth {
	case AuthUsername:
		opts = append(opts, opcua.AuthUsername(c.dev.OPCUA.Username, c.dev.OPCUA.Password))
		u = user{who: fmt.Sprintf("user %q", c.dev.OPCUA.Username), check: "check the username and password and the user's rights on the server"}
	case AuthCertificate:
		cert, key, err := loadUserCert(c.dev.OPCUA.UserCertFile, c.dev.OPCUA.UserKeyFile)
		if err != nil {
			return nil, nil, fmt.Errorf("load user certificate of device %q: %w", c.dev.Name, err)
		}
		opts = append(opts, opcua.AuthCertificate(cert.Raw), opcua.AuthPrivateKey(key))
		u = user{
			who: fmt.Sprintf("the user certificate %q (SHA-1 thumbprint %s, file %s)", cert.Subject, thumbprint(cert.Raw), c.dev.OPCUA.UserCertFile),
			check: "the server must trust it as a user certificate (often: move it from the server's rejected to its trusted user certificates) " +
				"and let that user connect",
		}
	default:
		opts = append(opts, opcua.AuthAnonymous())
	}
	states := make(chan opcua.ConnState, 64)
	opts = append(opts, opcua.SecurityFromEndpoint(ep, tokenType(c.auth)), opcua.StateChangedCh(states))

	cl, err := opcua.NewClient(c.endpoint, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to %s: %w", c.endpoint, err)
	}
	if err := safeConnect(ctx, cl); err != nil {
		return nil, nil, classify(c.endpoint, c.dev.Name, u, err)
	}
	return cl, states, nil
}

// safeConnect runs Connect, turning a panic into an error: gopcua v0.8.0 only logs a failed
// check of the server's signature in CreateSession and then dereferences the nil session.
func safeConnect(ctx context.Context, cl *opcua.Client) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: session not created (server signature not verified?): %v", ErrConnectionLost, r)
		}
	}()
	return cl.Connect(ctx)
}

// user is the identity a session runs as, for the message of ErrUserRejected: who the server
// refused and what to check.
type user struct{ who, check string }

// classify wraps a Connect error of device with the sentinel an integrator acts on.
func classify(endpoint, device string, u user, err error) error {
	var sc ua.StatusCode
	if errors.As(err, &sc) {
		name := statusName(sc)
		switch sc {
		case ua.StatusBadUserAccessDenied, ua.StatusBadIdentityTokenInvalid, ua.StatusBadIdentityTokenRejected,
			ua.StatusBadUserSignatureInvalid:
			return fmt.Errorf("%w: %s refused %s for device %q (%s): %s", ErrUserRejected, endpoint, u.who, device, name, u.check)
		case ua.StatusBadCertificateUntrusted, ua.StatusBadSecurityChecksFailed, ua.StatusBadCertificateInvalid,
			ua.StatusBadCertificateURIInvalid, ua.StatusBadCertificateRevoked, ua.StatusBadCertificateTimeInvalid,
			ua.StatusBadCertificateUseNotAllowed, ua.StatusBadCertificateIssuerRevocationUnknown, ua.StatusBadCertificateRevocationUnknown:
			return fmt.Errorf("%w: %s refused our application instance certificate (%s): trust own/cert.der of the pki_dir on the server (often: move it from the server's rejected to its trusted folder)",
				ErrCertificateRejected, endpoint, name)
		}
		return fmt.Errorf("%w: connect to %s: %s", ErrConnectionLost, endpoint, name)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: connect to %s: no answer within the timeout: %w", ErrUnreachable, endpoint, err)
	}
	return fmt.Errorf("%w: connect to %s: %w", ErrConnectionLost, endpoint, err)
}

func tokenType(auth string) ua.UserTokenType {
	switch auth {
	case AuthUsername:
		return ua.UserTokenTypeUserName
	case AuthCertificate:
		return ua.UserTokenTypeCertificate
	}
	return ua.UserTokenTypeAnonymous
}

// selectEndpoint picks the endpoint with the highest security level that has the policy, the
// mode (Invalid: any but None for a secure policy) and the user token type. When none fits, the
// error lists what the server offers.
func selectEndpoint(eps []*ua.EndpointDescription, policy string, mode ua.MessageSecurityMode, tok ua.UserTokenType) (*ua.EndpointDescription, error) {
	uri := ua.FormatSecurityPolicyURI(policy)
	sorted := append([]*ua.EndpointDescription(nil), eps...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].SecurityLevel > sorted[j].SecurityLevel })
	var fit *ua.EndpointDescription
	for _, ep := range sorted {
		if ep.SecurityPolicyURI != uri {
			continue
		}
		if mode == ua.MessageSecurityModeInvalid && ep.SecurityMode == ua.MessageSecurityModeNone && policy != "None" {
			continue
		}
		if mode != ua.MessageSecurityModeInvalid && ep.SecurityMode != mode {
			continue
		}
		fit = ep
		for _, t := range ep.UserIdentityTokens {
			if t.TokenType == tok {
				return ep, nil
			}
		}
	}
	var offered []string
	seen := map[string]bool{}
	for _, ep := range eps {
		var toks []string
		for _, t := range ep.UserIdentityTokens {
			toks = append(toks, tokenName(t.TokenType))
		}
		s := fmt.Sprintf("%s/%s (%s)", policyName(ep.SecurityPolicyURI), modeName(ep.SecurityMode), strings.Join(toks, ", "))
		if !seen[s] {
			seen[s] = true
			offered = append(offered, s)
		}
	}
	want := policy + "/" + modeName(mode)
	if mode == ua.MessageSecurityModeInvalid {
		want = policy + "/Sign or SignAndEncrypt"
	}
	if fit != nil {
		return nil, fmt.Errorf("%w: %s accepts no %s user token; the server offers: %s", ErrEndpointNotOffered, want, tokenName(tok), strings.Join(offered, "; "))
	}
	return nil, fmt.Errorf("%w: %s is not offered; the server offers: %s", ErrEndpointNotOffered, want, strings.Join(offered, "; "))
}

func policyName(uri string) string {
	if i := strings.LastIndexByte(uri, '#'); i >= 0 {
		return uri[i+1:]
	}
	return uri
}

func modeName(m ua.MessageSecurityMode) string {
	switch m {
	case ua.MessageSecurityModeNone:
		return "None"
	case ua.MessageSecurityModeSign:
		return "Sign"
	case ua.MessageSecurityModeSignAndEncrypt:
		return "SignAndEncrypt"
	}
	return "any"
}

func tokenName(t ua.UserTokenType) string {
	switch t {
	case ua.UserTokenTypeAnonymous:
		return "anonymous"
	case ua.UserTokenTypeUserName:
		return "username"
	case ua.UserTokenTypeCertificate:
		return "certificate"
	}
	return "issued token"
}
