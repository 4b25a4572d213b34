package config

import (
	"fmt"
	"strconv"
	"strings"
)

// Audit configures the audit trail: the local log in the data directory
// is always written; a syslog collector is optional.
type Audit struct {
	// Syslog is the collector's host:port for DICOM audit messages over
	// syslog TLS (RFC 5425); "" = no collector.
	Syslog string `toml:"syslog"`
	// SyslogCA is the PEM file of the CA that signed the collector's
	// certificate; required with Syslog. A relative path is taken from
	// the data directory.
	SyslogCA string `toml:"syslog_ca"`
	// SyslogCert and SyslogKey are our client certificate and key, for
	// collectors that require one; both or neither.
	SyslogCert string `toml:"syslog_cert"`
	SyslogKey  string `toml:"syslog_key"`
	// AppName is the APP-NAME of the syslog header.
	AppName string `toml:"app_name"`
	// SourceID is the AuditSourceID of every message; "" = this
	// machine's host name.
	SourceID string `toml:"source_id"`
	// SiteID is the AuditEnterpriseSiteID; "" = left out.
	SiteID string `toml:"site_id"`
	// QueueSize bounds the events waiting to be written.
	QueueSize int `toml:"queue_size"`
	// SyslogBacklog bounds the messages waiting for the collector.
	SyslogBacklog int `toml:"syslog_backlog"`
}

// Defaults of [audit].
const (
	// DefaultAuditSyslog is no collector: dicomshield cannot know one, and
	// the local log already keeps every record.
	DefaultAuditSyslog = ""
	// DefaultAuditAppName names dicomshield in the collector's records.
	DefaultAuditAppName = "dicomshield"
	// DefaultAuditSourceID "" means this machine's host name, what a
	// collector receiving from several servers tells them apart by.
	DefaultAuditSourceID = ""
	// DefaultAuditSiteID "" leaves the enterprise site out; set it when
	// one collector serves several sites.
	DefaultAuditSiteID = ""
	// DefaultAuditQueueSize bounds events waiting to be written (a few
	// MiB): writing far outpaces events, so it fills only when the disk
	// stalls, and then events are dropped, counted and alerted on, rather
	// than holding up a C-STORE.
	DefaultAuditQueueSize = 10000
	// DefaultAuditSyslogBacklog bounds messages waiting while the
	// collector is unreachable: hours of a busy clinic's events; every
	// one is in the local log too.
	DefaultAuditSyslogBacklog = 10000
)

// Ranges of [audit] that Validate enforces.
const (
	MinAuditQueue = 100
	MaxAuditQueue = 1000000
)

func defaultAudit() Audit {
	return Audit{Syslog: DefaultAuditSyslog, AppName: DefaultAuditAppName, SourceID: DefaultAuditSourceID,
		SiteID: DefaultAuditSiteID, QueueSize: DefaultAuditQueueSize, SyslogBacklog: DefaultAuditSyslogBacklog}
}

func (a *Audit) validate() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if a.Syslog != "" {
		host, port, err := splitHostPort(a.Syslog)
		switch {
		case err != nil:
			bad("audit.syslog: %v", err)
		case host == "":
			bad("audit.syslog: %q has no host; write the collector's name or address and port, for example \"logs.example.org:6514\"", a.Syslog)
		case checkHostname(host) != nil:
			bad("audit.syslog: %v", checkHostname(host))
		case port < 1 || port > 65535:
			bad("audit.syslog: in %q the port must be 1 to 65535 (6514 is syslog over TLS)", a.Syslog)
		}
		if a.SyslogCA == "" {
			bad("audit.syslog_ca: required with audit.syslog: the CA certificate file (PEM) that signed the collector's certificate, so that audit records go only to the real collector")
		}
	} else if a.SyslogCA != "" || a.SyslogCert != "" || a.SyslogKey != "" {
		bad("audit.syslog_ca, syslog_cert and syslog_key are set but audit.syslog is empty; set the collector's address or remove them")
	}
	if (a.SyslogCert == "") != (a.SyslogKey == "") {
		bad("audit.syslog_cert and audit.syslog_key go together: set both (for a collector that asks for a client certificate) or neither")
	}
	if a.AppName == "" || len(a.AppName) > 48 || strings.IndexFunc(a.AppName, func(r rune) bool { return r <= 32 || r >= 127 }) >= 0 {
		bad("audit.app_name: %q must be 1 to 48 printable ASCII characters without spaces (RFC 5424 APP-NAME); default %q", a.AppName, DefaultAuditAppName)
	}
	for _, f := range []struct{ name, v string }{{"source_id", a.SourceID}, {"site_id", a.SiteID}} {
		if strings.IndexFunc(f.v, func(r rune) bool { return r < 32 || r == 127 }) >= 0 || len(f.v) > 255 {
			bad("audit.%s: %q must be at most 255 characters without control characters", f.name, f.v)
		}
	}
	for _, f := range []struct {
		name   string
		v, def int
	}{{"queue_size", a.QueueSize, DefaultAuditQueueSize}, {"syslog_backlog", a.SyslogBacklog, DefaultAuditSyslogBacklog}} {
		if f.v < MinAuditQueue || f.v > MaxAuditQueue {
			bad("audit.%s: %d is out of range; use a number from %d to %d (default %d)", f.name, f.v, MinAuditQueue, MaxAuditQueue, f.def)
		}
	}
	return errs
}

// commentAudit writes the [audit] table of the commented file.
func (a *Audit) commented(table func(text, name string), opt func(text, key, value string)) {
	table(`The audit trail: DICOM audit messages (PS3.15 A.5) for every association
accepted or refused, query, transfer, security alert and configuration
change. They are always written to audit/audit.log in the data directory
(read it with "dicomshield audit"); with syslog set they are also sent to a
collector over TLS (RFC 5425). The trail names patients and studies: that
is its purpose, so keep the data directory and the collector private.`, "audit")
	opt(`The collector's address and port for syslog over TLS, such as
"logs.example.org:6514". Empty means no collector, the default.`, "syslog", quote(a.Syslog))
	opt(`The CA certificate (PEM) that signed the collector's certificate; required
with syslog, so that records go only to the real collector. A relative path
is taken from the data directory.`, "syslog_ca", quote(a.SyslogCA))
	opt(`Our client certificate and key (PEM) for a collector that asks for one;
set both or neither.`, "syslog_cert", quote(a.SyslogCert))
	opt(`The key of syslog_cert.`, "syslog_key", quote(a.SyslogKey))
	opt(`The application name in the collector's records (RFC 5424 APP-NAME).`, "app_name", quote(a.AppName))
	opt(`The AuditSourceID of every message. Empty means this machine's host name.`, "source_id", quote(a.SourceID))
	opt(`The AuditEnterpriseSiteID of every message, for a collector that serves
several sites. Empty leaves it out.`, "site_id", quote(a.SiteID))
	opt(`Most events waiting to be written. The queue fills only if the disk
stalls; then events are dropped, counted and reported by an alert rather
than holding up the DICOM traffic.`, "queue_size", strconv.Itoa(a.QueueSize))
	opt(`Most messages kept while the collector cannot be reached; they are all in
the local log as well.`, "syslog_backlog", strconv.Itoa(a.SyslogBacklog))
}
