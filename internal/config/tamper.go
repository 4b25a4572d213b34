package config

// The [tamper] section: its checks and its commented lines in the default
// file (the defaults and the type are in config.go).

// validate reports what is wrong with t; c gives the accepted risks.
func (t *Tamper) validate(c *Config, bad func(string, ...any)) {
	switch d := t.SealAfter.Duration(); {
	case d == 0:
		if !c.Accepts(RiskUnsealedSeries) {
			bad("tamper.seal_after: \"0\" never seals a series, so anyone allowed to store could add a forged image to any series, however old; use a duration such as %q, or add \"unsealed-series\" to accept_risk to accept that risk", Duration(DefaultSealAfter).String())
		}
	case d < MinSealAfter || d > MaxSealAfter:
		bad("tamper.seal_after: %q is out of range; use a duration from %q to %q (default %q), or \"0\" to never seal", d.String(), "1m", "720h", Duration(DefaultSealAfter).String())
	}
	switch t.ForeignStudy {
	case ForeignStudyRefuse:
	case ForeignStudyAllow:
		if !c.Accepts(RiskForeignStudy) {
			bad("tamper.foreign_study: \"allow\" lets any peer that may store add instances to studies other peers created; use \"refuse\", or add \"foreign-study\" to accept_risk to accept that risk")
		}
	default:
		bad("tamper.foreign_study: %q is not a choice; use \"refuse\" (default) or \"allow\"", t.ForeignStudy)
	}
}

// commentedTamper writes the [tamper] table of the default file.
func (c *Config) commentedTamper(table func(text, name string), opt func(text, key, value string)) {
	table(`Protection against forged and altered images.`, "tamper")
	opt(`A series whose last image arrived longer ago than this is sealed: new
images for it are refused and reported as a security alert. This stops a
forged image being slipped into a finished series. A peer registered with
--may-reopen may still add to the series it created itself. "0" never seals
and also requires "unsealed-series" in accept_risk.`,
		"seal_after", quote(c.Tamper.SealAfter.String()))
	opt(`Images for a study from another peer than the one that created it:
"refuse" (the default, reported as a security alert) or "allow", which also
requires "foreign-study" in accept_risk.`,
		"foreign_study", quote(c.Tamper.ForeignStudy))
}
