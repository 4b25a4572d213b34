package archive_test

// A token (JWT, identity type 5) that expires while its association is
// open ends the association: the archive looks at every open association's
// token expiry every half second, by the rule acceptance refuses an
// expired token with (exp plus jwt_clock_skew).

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dicomshield/dicomshield/internal/archive"
	"github.com/dicomshield/dicomshield/internal/config"
	"github.com/dicomshield/dicomshield/internal/dicomtest"
)

// tokenAbortWithin is how soon after the token's expiry (exp plus the
// leeway) the archive must have aborted the association and recorded the
// alert: it looks every half second, and deciding and aborting take
// milliseconds.
const tokenAbortWithin = time.Second

// TestTokenExpiryAbortsDCMTK: DCMTK's storescu sends a long series over
// one association, authenticated with --jwt by a token that expires about
// two seconds after it starts. The association is answered until then, is
// aborted within a second after, with an association-aborted-token-expired
// alert naming the user; storescu reports the abort, every instance it was
// answered for is kept, nothing is answered after the abort, and neither
// the log nor the alert holds the token.
func TestTokenExpiryAbortsDCMTK(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	dicomtest.RequireDCMTK(t, "storescu")
	iss := dicomtest.NewIssuer(t)
	dir := filepath.Join(t.TempDir(), "data")
	al := newAlerts()
	s := startAuditedServer(t, dir, al, "https://idp.test", iss.WriteJWKS(t))
	mod := addPeer(t, dir, "MODALITY1", "--allow", "echo,store", "--require-user")
	// Far more than can be sent before the token expires and the abort
	// takes, on any machine: the test does not wait for the series to end.
	series := writeSeries(t, 1500)

	// serve runs with the default jwt_clock_skew: the token is accepted
	// until exp plus that leeway, so exp is set that far before the
	// moment, about two seconds from now, the association is to end.
	skew := config.DefaultJWTClockSkew
	exp := time.Now().Add(2*time.Second - skew).Add(time.Second).Truncate(time.Second)
	until := exp.Add(skew)
	token := iss.Sign(t, nil, map[string]any{"iss": "https://idp.test", "aud": "dicomshield", "sub": "dr-token",
		"exp": exp.Unix(), "roles": []string{"modality"}})
	tokenPath := filepath.Join(t.TempDir(), "token.jwt")
	if err := os.WriteFile(tokenPath, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	p := dicomtest.StartDCMTK(t, "storescu", "-v", "-aet", mod.AE, "-aec", archiveAE, "+tls", mod.KeyPath, mod.CertPath, "+cf", mod.CAPath,
		"--jwt", tokenPath, "-rsp", "+sd", "127.0.0.1", port(t, s.TLSAddr), series.dir)

	// Wait for the alert, noting when it came.
	var why string
	var abortedAt time.Time
	timeout := time.After(time.Until(until) + abortWithin)
	for abortedAt.IsZero() {
		if w, ok := al.findUser(archive.AlertAbortedTokenExpired, "dr-token"); ok {
			why, abortedAt = w, time.Now()
			break
		}
		select {
		case <-al.ch:
		case <-timeout:
			t.Fatalf("no %s alert %v after the token expired; storescu:\n%s", archive.AlertAbortedTokenExpired, abortWithin, tail(p.Output(), 20))
		case <-time.After(5 * time.Millisecond):
		}
	}
	// What the archive holds once the alert is recorded: every answer
	// storescu got must be for one of these.
	atAbort := series.storedSet(t, s.A)
	if abortedAt.Before(until) {
		t.Errorf("aborted %v before the token expired", until.Sub(abortedAt))
	} else if late := abortedAt.Sub(until); late > tokenAbortWithin {
		t.Errorf("aborted %v after the token expired, want within %v", late, tokenAbortWithin)
	}
	waitLog(t, s.Logs, time.Now().Add(abortWithin), "open association aborted: its user's token expired", "user=dr-token")
	acked := checkCutShort(t, s, p, series, atAbort)
	if !strings.Contains(why, "token") || !strings.Contains(why, "expired") {
		t.Errorf("alert %q, want it to say the token expired", why)
	}
	payload := strings.Split(token, ".")[1]
	if logs := s.Logs.String(); strings.Contains(logs, payload) || strings.Contains(why, payload) {
		t.Error("the token is in the archive log or the alert")
	}
	t.Logf("aborted %v after the token expired; storescu answered for %d of %d, %d stored at the abort",
		abortedAt.Sub(until).Round(time.Millisecond), len(acked), len(series.uids), len(atAbort))
}
