package config

import "time"

// Enrolment defaults. Each is what a fresh install runs with; the comment
// says why.
const (
	// DefaultEnrollListen is the HTTPS listener where devices enrol and
	// renew their certificates, on every interface like the DICOM
	// listener, since the devices that enrol are the ones that send
	// DICOM. It cannot share the DICOM TLS listener, which refuses
	// connections without a client certificate, and a device that enrols
	// has none yet. 2763 is the port after dicom-tls (2762), easy to
	// remember and to open in the same firewall rule.
	DefaultEnrollListen = ":2763"

	// DefaultTokenLifetime is how long an enrolment token works: one day,
	// long enough to carry it from the administrator's desk to the device
	// and short enough that a token written on a forgotten note is
	// useless by the next morning. A token also works only once.
	DefaultTokenLifetime = 24 * time.Hour

	// DefaultPeerCertLifetime is how long an enrolled or renewed peer
	// certificate lasts: 14 days, as pki.DefaultPeerValidity explains
	// (renewed at two thirds, leaving a long weekend of margin).
	DefaultPeerCertLifetime = 14 * 24 * time.Hour
)

// Ranges for the enrolment options.
const (
	MinTokenLifetime    = 5 * time.Minute     // less cannot be typed in on a device in time
	MaxTokenLifetime    = 7 * 24 * time.Hour  // a token is a password until used; a week at most
	MinPeerCertLifetime = time.Hour           // renewal at two thirds must stay practical
	MaxPeerCertLifetime = 90 * 24 * time.Hour // certificates here are short-lived by design
)

// Enroll says how devices enrol and renew their certificates.
type Enroll struct {
	// Listen is the HTTPS enrolment listener; "" turns enrolment off.
	Listen           string   `toml:"listen"`
	TokenLifetime    Duration `toml:"token_lifetime"`
	PeerCertLifetime Duration `toml:"peer_cert_lifetime"`
}

func defaultEnroll() Enroll {
	return Enroll{
		Listen:           DefaultEnrollListen,
		TokenLifetime:    Duration(DefaultTokenLifetime),
		PeerCertLifetime: Duration(DefaultPeerCertLifetime),
	}
}

func (e Enroll) validate(bad func(format string, a ...any)) {
	if e.Listen != "" {
		if err := checkListen(e.Listen); err != nil {
			bad("enroll.listen: %v", err)
		}
	}
	if d := e.TokenLifetime.Duration(); d < MinTokenLifetime || d > MaxTokenLifetime {
		bad("enroll.token_lifetime: %q is out of range; use a duration from %q to %q (default %q)",
			d.String(), Duration(MinTokenLifetime).String(), Duration(MaxTokenLifetime).String(), Duration(DefaultTokenLifetime).String())
	}
	if d := e.PeerCertLifetime.Duration(); d < MinPeerCertLifetime || d > MaxPeerCertLifetime {
		bad("enroll.peer_cert_lifetime: %q is out of range; use a duration from %q to %q (default %q)",
			d.String(), Duration(MinPeerCertLifetime).String(), Duration(MaxPeerCertLifetime).String(), Duration(DefaultPeerCertLifetime).String())
	}
}

// enrollComment is what WriteDefault writes for the [enroll] table.
func (c *Config) enrollCommented(table func(text, name string), opt func(text, key, value string)) {
	table(`Enrolment: devices fetch their certificate themselves with a one-time
token ("dicomshield peer add ... --token" on this server, then
"dicomshield enroll --token ..." on the device), and renew it before it
expires ("dicomshield enroll --renew"). Keys never leave the device.`, "enroll")
	opt(`Address and port of the HTTPS enrolment listener. It serves only
enrolment and renewal, answers nothing without a valid token or
certificate, and limits how often each address may ask. Empty turns
enrolment off (certificates are then given out with --bundle only).`,
		"listen", quote(c.Enroll.Listen))
	opt(`How long a new token works ("30m", "24h"). It also works only once.`,
		"token_lifetime", quote(c.Enroll.TokenLifetime.String()))
	opt(`How long an enrolled or renewed device certificate lasts. Devices
renew after two thirds of it; short lives limit what a stolen key is
worth ("336h" is 14 days; at most "2160h", 90 days).`,
		"peer_cert_lifetime", quote(c.Enroll.PeerCertLifetime.String()))
}
