// Package pki is the archive's internal certificate authority: it lets
// dicomshield serve DICOM over TLS from its first start, with no manual
// certificate work, and only to peers it has issued a certificate to.
//
// # Files
//
// The CA lives in one directory (the data directory's pki/ folder), created
// with mode 0700:
//
//	ca.key      the CA's private key (PKCS #8 PEM, mode 0600)
//	ca.pem      the CA's self-signed certificate (PEM, mode 0644)
//	server.key  the archive's TLS server key (PKCS #8 PEM, mode 0600)
//	server.pem  the archive's TLS server certificate (PEM, mode 0644)
//
// LoadOrCreate refuses a key file that its owner is not the only one able
// to read or write, and never overwrites an existing CA key. The server
// certificate is derived state: it is re-issued whenever it is missing,
// unreadable, about to expire or made for other host names.
//
// # Peer bundles
//
// IssuePeer writes what a DICOM peer needs into a directory of its own:
// ca.pem, <AE>.crt and <AE>.key. DCMTK tools use it as it is:
//
//	echoscu +tls AE.key AE.crt +cf ca.pem HOST PORT
//
// The certificate binds the peer to its AE title (see IssuePeer), and
// PeerAETitle reads the binding back from a verified connection.
//
// # Key types
//
// The CA and the peers have ECDSA P-256 keys: small, fast, and 128-bit
// security. Neither the client key type nor the type of the CA's signature
// restricts the TLS 1.2 cipher suite. DCMTK 3.6.7 accepts both in TLS 1.2
// and TLS 1.3 (see TestDCMTKInterop).
//
// The server key is RSA (ServerRSABits) because in TLS 1.2 the server's
// key type selects the cipher suite family. DCMTK 3.6.7's default profile
// (Non-downgrading BCP 195, PS3.15 B.10) offers ECDHE_RSA and DHE_RSA
// AES-GCM suites only for TLS 1.2, and its "BCP 195" profile does the same.
// With an ECDSA server key, DCMTK could connect with TLS 1.3 only, and
// would need extra options for TLS 1.2
// ("+cs TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"). Peers that follow the
// same DICOM profiles or cannot do TLS 1.3 would fail the same way. With
// an RSA server key, TLS 1.2 and TLS 1.3 both work without options.
//
// # Enrolment
//
// A device need not receive a key from the archive: it makes its own key,
// sends a certificate signing request, and IssueForCSR signs it with the
// same AE binding as IssuePeer (see package enroll for the protocol).
// WriteBundle writes what comes back in the layout IssuePeer uses.
//
// # Time
//
// The DefaultXxxValidity constants set every certificate's lifetime; no
// certificate outlives the CA. NotBefore is backdated by
// ClockSkewAllowance. Server and peer certificates live for days, and are
// renewed once two thirds of their life has passed (RenewDue).
package pki

import "time"

// Lifetimes and renewal.
const (
	// DefaultCAValidity is the CA certificate's lifetime: 10 years. The CA
	// key only signs certificates and never leaves the machine, so there
	// is no exposure to limit. A new CA means enrolling every peer
	// again, so that should happen rarely.
	DefaultCAValidity = 10 * 365 * 24 * time.Hour

	// DefaultServerValidity is the server certificate's lifetime: 14
	// days. Renewal is automatic, during handshakes, so a short life
	// costs nothing and limits how long a stolen server key can be used.
	// It matches DefaultPeerValidity so that one rule (renew at two
	// thirds of the life) serves both.
	DefaultServerValidity = 14 * 24 * time.Hour

	// DefaultRenewBefore is how long before expiry the server certificate
	// is re-issued: a third of its life (4 days 16 hours), so renewal
	// happens at two thirds of it. What is left covers a long weekend
	// (Friday evening to Tuesday morning) in which a failing renewal
	// (full disk, read-only data directory) is logged at every retry
	// before peers see an expired certificate.
	DefaultRenewBefore = DefaultServerValidity / 3

	// DefaultPeerValidity is a peer certificate's lifetime: 14 days.
	// Peers renew it themselves ("dicomshield enroll --renew" from a
	// daily timer, or a running gateway) once two thirds have passed
	// (RenewDue), which leaves the same long-weekend margin as the
	// server's. A certificate that leaks, or whose revocation is lost
	// with a restored backup of peers.json, is useless two weeks later.
	DefaultPeerValidity = 14 * 24 * time.Hour

	// ClockSkewAllowance is how far NotBefore is backdated: 1 hour. A
	// peer whose clock is slightly behind would otherwise refuse a
	// certificate issued a moment ago.
	ClockSkewAllowance = time.Hour

	// renewRetryInterval is the minimum time between two attempts to
	// renew the server certificate during handshakes after one attempt
	// failed: 1 minute. Without it, every handshake would generate an RSA
	// key and fail again while the current certificate is still valid.
	renewRetryInterval = time.Minute
)

// Keys, serial numbers and names.
const (
	// ServerRSABits is the size of the server's RSA key: 3072 bits. That
	// gives 128-bit security, like P-256 and AES-128 (NIST SP 800-57).
	// BSI TR-02102 asks for at least 3000 bits. A key is generated only
	// when the certificate is renewed, so the cost is rare.
	ServerRSABits = 3072

	// serialBytes is the length of random serial numbers: 16 bytes (128
	// bits), far more than the 64 bits of randomness that keep serials
	// unpredictable, and within RFC 5280's limit of 20 octets.
	serialBytes = 16

	// caIDBytes is the number of random bytes in the CA's name ("dicomshield
	// CA 1a2b3c4d"): 4. That is enough to tell the CAs of different archives
	// apart in a peer's trust store and in logs. The ID is not a secret.
	caIDBytes = 4

	// MaxAETitleLength is the longest AE title: 16 characters (PS3.5,
	// VR AE).
	MaxAETitleLength = 16

	// AEURIScheme is the scheme of the URI subject alternative name that
	// binds a peer certificate to its AE title: dicom-ae:<AE title>.
	AEURIScheme = "dicom-ae"
)

// File names in the CA directory and in peer bundles.
const (
	CAKeyFile      = "ca.key"
	CACertFile     = "ca.pem"
	ServerKeyFile  = "server.key"
	ServerCertFile = "server.pem"
)

// File modes.
const (
	// dirPerm: the CA directory is the owner's only. Its file names tell
	// nothing secret, but a directory others can write to would let them
	// replace the files.
	dirPerm = 0o700
	// keyPerm: private keys are readable by their owner only.
	keyPerm = 0o600
	// certPerm: certificates are public.
	certPerm = 0o644
)
