package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// WriteDefault writes the default configuration to path as a commented
// file: every option with its default value and the reason for it. The
// file is created with mode 0600 and only if nothing exists at path: an
// existing file is never overwritten, and the error then satisfies
// errors.Is(err, fs.ErrExist). The file appears whole or not at all.
func WriteDefault(path string) error {
	return writeNew(path, []byte(Default().commented()))
}

// writeNew writes data to a temporary file beside path, syncs it, and links
// it into place, which fails if path exists.
func writeNew(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing default configuration: %w", err)
	}
	name := tmp.Name()
	defer os.Remove(name)
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("writing default configuration: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing default configuration: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("writing default configuration: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing default configuration: %w", err)
	}
	if err := os.Link(name, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("writing default configuration: %w", err)
		}
		// A file system without hard links: create exclusively instead.
		if err := writeExclusive(path, data); err != nil {
			return fmt.Errorf("writing default configuration: %w", err)
		}
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

func writeExclusive(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return err
}

// commented renders c as a TOML file in which every option and table is
// preceded by comment lines explaining it.
func (c *Config) commented() string {
	var b strings.Builder
	comment := func(text string) {
		for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
			b.WriteString(strings.TrimRight("# "+line, " "))
			b.WriteByte('\n')
		}
	}
	opt := func(text, key, value string) {
		b.WriteByte('\n')
		comment(text)
		b.WriteString(key + " = " + value + "\n")
	}
	table := func(text, name string) {
		b.WriteString("\n")
		comment(text)
		b.WriteString("[" + name + "]\n")
	}

	comment(`dicomshield configuration.

Lines starting with # are comments. Every option is shown with its default
value and the reason for it; an option removed from this file takes its
default. An option dicomshield does not know is an error, so a misspelt
setting is reported instead of being silently ignored.
Keep this file writable only by its owner (chmod 600): dicomshield refuses
a configuration that other users can change.`)
	opt(`Format of this file. Leave it as it is.`, "version", strconv.Itoa(c.Version))
	opt(`The AE title other DICOM devices use to address this server (1 to 16
characters, no backslash). Modalities and viewers must be configured with
exactly this title; associations addressed to another title are refused.`,
		"ae_title", quote(c.AETitle))
	opt(`Address and port of the encrypted DICOM listener (DICOM over TLS).
2762 is the port registered for DICOM over TLS, which devices set up for
secure DICOM expect. ":2762" listens on every network interface.`,
		"listen_tls", quote(c.ListenTLS))
	opt(`Address and port of the plain, unencrypted DICOM listener, for old
devices that cannot use TLS (traditionally ":104" or ":11112"). Empty means
off, the default: unencrypted DICOM lets anyone on the network read patient
data. Turning it on also requires "plaintext" in accept_risk below.`,
		"listen", quote(c.Listen))
	opt(`Names and addresses put in the server's certificate: every name or IP
address that peers use to reach this server must be listed, or they cannot
verify its certificate. The default is this machine's name, localhost and
the loopback addresses.`,
		"hostnames", quoteArray(c.Hostnames))
	opt(`Address of the Prometheus metrics endpoint. Empty means off. The default
is loopback only, because the metrics reveal traffic volumes and the software
version; another address also requires "metrics-public" in accept_risk.`,
		"metrics", quote(c.Metrics))
	opt(`Risks the owner knowingly accepts, by name. Known names:
  "plaintext"       allow the unencrypted listener (listen)
  "metrics-public"  allow metrics on an address other machines can reach
  "unsealed-series" allow tamper.seal_after = "0" (series never sealed)
  "foreign-study"   allow tamper.foreign_study = "allow"
Empty by default: nothing risky is allowed.`,
		"accept_risk", quoteArray(c.AcceptRisk))

	table(`How the server logs (to standard error). Logs never contain patient
data. "serve --log-format" and "--log-level" override these.`, "log")
	opt(`"text" is easy to read on a console; "json" suits log collectors.`,
		"format", quote(c.Log.Format))
	opt(`"info" records each association and every problem; "debug" adds the
detail of each message; "warn" and "error" record only problems.`,
		"level", quote(c.Log.Level))

	table(`Limits on what peers can make the server do. They keep one faulty or
hostile device from exhausting the server.`, "limits")
	opt(`Most associations (connections) open at once from all peers. Each holds
memory and a connection; the default is well above what a clinic uses.`,
		"max_associations", strconv.Itoa(c.Limits.MaxAssociations))
	opt(`Most associations open at once from one peer, so one device cannot take
every slot and lock the others out.`,
		"max_associations_per_peer", strconv.Itoa(c.Limits.MaxAssociationsPerPeer))
	opt(`Largest DICOM object accepted ("4GiB", "500MiB"; KiB/MiB/GiB are powers
of 1024, KB/MB/GB powers of 1000). 4GiB, the largest a single DICOM element
can be, covers large multi-frame images yet stops a peer filling the disk.`,
		"max_instance_size", quote(c.Limits.MaxInstanceSize))
	opt(`An association on which nothing arrives for this long is closed, freeing
its slot from a device that crashed or lost its network ("30s", "2m", "1h").`,
		"idle_timeout", quote(c.Limits.IdleTimeout.String()))
	opt(`Time a new connection has to finish setting up its association. Real
devices need milliseconds; this stops connections left hanging on purpose.`,
		"associate_timeout", quote(c.Limits.AssociateTimeout.String()))
	opt(`Most matches one query (C-FIND) returns, so that a query with wildcards
cannot list every patient at once.`,
		"max_find_results", strconv.Itoa(c.Limits.MaxFindResults))
	c.commentedIdentity(table, opt)
	c.Abuse.comment(table, opt)

	c.Audit.commented(table, opt)
	c.commentedTamper(table, opt)
	c.enrollCommented(table, opt)
	return b.String()
}

// quote writes s as a TOML basic string.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, "\\u%04X", r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func quoteArray(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
