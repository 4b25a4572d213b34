package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/dicomshield/dicomshield/internal/archive"
	"github.com/dicomshield/dicomshield/internal/config"
)

// DefaultDataDir is where an archive lives when --data is not given.
const DefaultDataDir = "dicomshield-data"

// auditCloseGrace is how long, after the archive stopped, the audit
// trail may take to hand its backlog to the syslog collector: enough for
// a reachable collector, not so long that a dead one holds up a restart.
// Every record is in the local log already.
const auditCloseGrace = 10 * time.Second

// shutdownGrace is how long in-flight operations may take after SIGTERM
// before the rest is aborted: long enough for a C-STORE of a large
// instance on a LAN.
const shutdownGrace = 30 * time.Second

func addDataFlag(cmd *cobra.Command, dir *string) {
	cmd.Flags().StringVar(dir, "data", DefaultDataDir, "the archive's data directory")
}

// closeAll closes the listeners that are open.
func closeAll(ls ...net.Listener) {
	for _, l := range ls {
		if l != nil {
			l.Close()
		}
	}
}

func newServeCmd() *cobra.Command {
	var dir, listenTLS, listen, listenEnroll, logFormat, logLevel string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the archive: DICOM over TLS, registered peers only",
		Long: `serve runs dicomshield's archive. The first start creates the data directory,
a commented config file (dicomshield.toml), an internal certificate authority
and a server certificate, then listens for DICOM over TLS on port 2762.
Nobody may associate until you register a peer with "dicomshield peer add".
Plain (non-TLS) DICOM is off unless --listen (or "listen" in the config) is
set, and even then only peers registered with --plaintext may use it.

SIGTERM or Ctrl-C stops accepting, lets in-flight operations finish for up to
30 s, then exits.`,
		Example: `  dicomshield serve
  dicomshield serve --data /srv/pacs --listen-tls 0.0.0.0:2762
  dicomshield serve --listen 127.0.0.1:11112   # plain DICOM for legacy peers`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Signals are caught from the start: a SIGTERM while the
			// archive opens still stops it gracefully (Serve returns at
			// once), where the default action killed the process.
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			logCfg, err := serveLogConfig(dir)
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("log-format") {
				logCfg.Format = logFormat
			}
			if cmd.Flags().Changed("log-level") {
				logCfg.Level = logLevel
			}
			log, err := newLogger(cmd.ErrOrStderr(), logCfg)
			if err != nil {
				return err
			}
			a, setup, err := archive.Open(dir, log)
			if err != nil {
				return err
			}
			defer a.Close()
			trail, err := a.StartAudit(func(err error) { log.Error("audit trail", "err", err) })
			if err != nil {
				return err
			}
			a.Audit = trail
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), auditCloseGrace)
				defer cancel()
				if err := trail.Close(ctx); err != nil {
					log.Error("audit trail: not every record reached the collector", "err", err)
				}
				if st := trail.Stats(); st.Dropped > 0 || st.Failed > 0 || st.SyslogDropped > 0 {
					log.Warn("audit trail lost records", "dropped", st.Dropped, "failed", st.Failed, "syslog_dropped", st.SyslogDropped)
				}
			}()
			if cmd.Flags().Changed("listen-tls") {
				a.Config.ListenTLS = listenTLS
			}
			if cmd.Flags().Changed("listen") {
				a.Config.Listen = listen
			}
			if cmd.Flags().Changed("listen-enroll") {
				a.Config.Enroll.Listen = listenEnroll
			}
			tlsL, plainL, err := a.Listeners()
			if err != nil {
				return err
			}
			enrollL, err := a.ListenEnroll()
			if err != nil {
				closeAll(tlsL, plainL)
				return err
			}
			out := cmd.OutOrStdout()
			if setup.CreatedDir {
				fmt.Fprintf(out, "created data directory %s\n", dir)
			}
			if setup.CreatedConfig {
				fmt.Fprintf(out, "wrote %s (every option with its default and reason)\n", setup.ConfigPath)
			}
			if setup.CreatedCA {
				fmt.Fprintf(out, "created a certificate authority in %s\n", filepath.Join(dir, archive.PKIDir))
			}
			fmt.Fprintf(out, "CA fingerprint (SHA-256): %s\n", setup.CAFingerprint)
			if h, err := a.Index.LedgerHead(cmd.Context()); err == nil {
				fmt.Fprintf(out, "ledger head: seq %d hash %s (record it elsewhere; \"dicomshield verify\" checks against it)\n", h.Seq, h.Hash)
			} else {
				return err
			}
			if tlsL != nil {
				fmt.Fprintf(out, "listening for DICOM over TLS on %s as %s\n", tlsL.Addr(), a.Config.AETitle)
			}
			if plainL != nil {
				fmt.Fprintf(out, "listening for plain DICOM on %s (only peers registered with --plaintext)\n", plainL.Addr())
			}
			if enrollL != nil {
				fmt.Fprintf(out, "listening for certificate enrolment (HTTPS) on %s\n", enrollL.Addr())
			}
			peers, _ := a.Registry.List(cmd.Context())
			if len(peers) == 0 {
				fmt.Fprintf(out, "no peer registered yet: nobody can connect. Next step, for each device:\n"+
					"  dicomshield peer add MODALITY1 --host 192.0.2.10 --allow echo,store --token --data %s\n"+
					"  then on the device: dicomshield enroll --token TOKEN --server THIS_HOST:%s --out DIR\n"+
					"  (a device that cannot run enroll: --bundle ./modality1 instead of --token, and copy the files)\n", dir, enrollPort(a.Config.Enroll.Listen))
			} else {
				fmt.Fprintf(out, "%d registered peers\n", len(peers))
			}
			enrollDone := make(chan error, 1)
			if enrollL != nil {
				go func() { enrollDone <- a.ServeEnroll(ctx, enrollL) }()
			} else {
				enrollDone <- nil
			}
			err = a.Serve(ctx, tlsL, plainL, shutdownGrace)
			stop() // Serve may have ended on its own: stop enrolment too
			if eerr := <-enrollDone; eerr != nil {
				log.Error("enrolment listener", "err", eerr)
			}
			fmt.Fprintln(out, "stopped")
			return err
		},
	}
	addDataFlag(cmd, &dir)
	cmd.Flags().StringVar(&listenTLS, "listen-tls", config.Default().ListenTLS, "address for DICOM over TLS (overrides the config)")
	cmd.Flags().StringVar(&listen, "listen", "", "address for plain DICOM, off by default (overrides the config)")
	cmd.Flags().StringVar(&listenEnroll, "listen-enroll", config.Default().Enroll.Listen, `address for certificate enrolment over HTTPS (overrides the config; "" turns it off)`)
	cmd.Flags().StringVar(&logFormat, "log-format", "", `log format: "text" or "json" (overrides the config's [log] format)`)
	cmd.Flags().StringVar(&logLevel, "log-level", "", `least log level: "debug", "info", "warn" or "error" (overrides the config's [log] level)`)
	return cmd
}

// enrollPort is the port of the enrolment listener address (":2763"), for
// the next-step hint.
func enrollPort(listen string) string {
	if _, port, err := net.SplitHostPort(listen); err == nil && port != "" {
		return port
	}
	return "2763"
}

// serveLogConfig returns the [log] section of the configuration in dir,
// read before the archive opens so that what Open logs (recovery) is
// already in the configured format; the defaults when there is no
// configuration yet (Open then writes them). A configuration that does
// not load is the error Open would give.
func serveLogConfig(dir string) (config.Log, error) {
	c, err := config.Load(config.Path(dir))
	switch {
	case err == nil:
		return c.Log, nil
	case errors.Is(err, fs.ErrNotExist):
		return config.Default().Log, nil
	}
	return config.Log{}, err
}

// newLogger builds serve's logger from a [log] section (flags already
// applied).
func newLogger(w io.Writer, c config.Log) (*slog.Logger, error) {
	levels := map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}
	level, ok := levels[c.Level]
	if !ok {
		return nil, fmt.Errorf("log level %q: use \"debug\", \"info\", \"warn\" or \"error\"", c.Level)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch c.Format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: use \"text\" or \"json\"", c.Format)
}
