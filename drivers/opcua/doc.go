// Package opcua is Floorlink's OPC UA client driver: one Driver per device (a server endpoint),
// reading tags by batched Read (mode poll) or by monitored items (mode subscribe), over gopcua
// v0.8.0 with the supervision that client lacks. It imports only drivers; the agent maps its
// config onto drivers.Device and Options, and the CLI uses Browse and PKI.
//
// # Connection
//
// Each connection starts with GetEndpoints; the endpoint is chosen by security policy (None,
// Basic256Sha256, Aes128_Sha256_RsaOaep, Aes256_Sha256_RsaPss), mode (None, Sign,
// SignAndEncrypt; empty = the best offered) and user token (anonymous, username, X.509
// certificate). Failures wrap one sentinel each, with a message saying what to do:
// ErrUnreachable, ErrEndpointNotOffered (listing what the server offers),
// ErrServerCertUntrusted (*UntrustedCertError: which file to move where),
// ErrServerCertInvalid, ErrCertificateRejected (the server refused our certificate),
// ErrUserRejected (BadUserAccessDenied, BadIdentityTokenInvalid/Rejected; naming the device and
// the user or user certificate) and ErrConnectionLost. While a device is down every tag is bad
// with a short reason ("unreachable", "server certificate not trusted", "user rejected"…).
//
// # Certificates
//
// With a policy other than None the PKI directory (PKIDir) holds our application instance
// certificate, created on first use (RSA 2048, SHA-256, URI SAN the ApplicationURI, DNS SAN
// the host name, valid CertValidity, files 0600) and kept across restarts, and the server
// certificates: trusted/ (pinned certificates or CA certificates), issuers/ (CAs and
// intermediates) and rejected/. gopcua never checks the server's certificate; VerifyServer does
// before every session. An unknown one is saved to rejected/ and refused, unless
// TrustOnFirstUse stores it in trusted/. PKI.Show, Renew and Export serve `floorlink opcua
// cert`; CertInfo.ExpiresWithin(now, ExpiryWarning) tells the agent when to warn.
//
// # Supervisor
//
// gopcua's own reconnect can go silent while it reports Connected (lost monitored items,
// reused subscription ids deleted, a frozen server never noticed), so it is off: Run owns the
// client, and on any doubt closes it and builds a new client and session after a capped
// exponential backoff with jitter, recreates the subscriptions, and reads every tag once so
// that values changed during the outage are not lost. In subscribe mode each subscription
// carries a heartbeat item, the server's CurrentTime (i=2258) sampled every second; a
// subscription whose heartbeat is silent for Options.HeartbeatTimeout means a dead or frozen
// server. A quiet plant still has its heartbeat, so it causes no reconnect. An item is judged
// by its first notification: until it comes, the item is read instead. A node the server
// refuses (BadNodeIdUnknown) makes its tag alone bad with that status and a fault event.
//
// # Requests
//
// Reads and CreateMonitoredItems calls are split by the server's OperationLimits
// (MaxNodesPerRead, MaxMonitoredItemsPerCall) and by an estimated size budget
// (Options.RequestBytes, 48 KiB): gopcua v0.8.0 drops the connection when an encrypted request
// needs more than one 64 KiB chunk. Subscriptions hold at most Options.ItemsPerSubscription
// items (1000) each, plus their heartbeat.
//
// # Values
//
// Boolean, SByte…UInt64, Float, Double and String map to their Value kinds; DateTime to RFC
// 3339 text (UTC); ByteString to base64 text; enumerations to their Int32; one-dimensional
// arrays of numbers or booleans to JSON array text (tag type: the element type). A tag whose
// configured type differs from the server's is bad with "type mismatch", reported once by a
// fault event; type auto takes what the server sends. Quality follows the StatusCode's class,
// the reason is its name. Samples carry the source timestamp, the server's, or none (gateway)
// by the device's timestamp option.
//
// # Caveats
//
// gopcua runs goroutines of its own per client; Run closes them before it returns, waiting at
// most a second for a server that does not answer. The secured tests need node-opcua (make
// deps installs it into .deps/opcua): gopcua's server package cannot do security.
package opcua
