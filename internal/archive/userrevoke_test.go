package archive_test

// Users changed while they hold an association open: `user remove`, `user
// passwd` and a role edited in users.json end the associations that
// authenticated that user (A-ABORT, security alert), as `peer revoke` ends
// a peer's; changes to other users, and associations without a user, are
// left alone.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dicomshield/dicomshield/internal/archive"
	"github.com/dicomshield/dicomshield/internal/cli"
	"github.com/dicomshield/dicomshield/internal/dicom"
	"github.com/dicomshield/dicomshield/internal/dicomtest"
	"github.com/dicomshield/dicomshield/internal/dimse"
	"github.com/dicomshield/dicomshield/internal/identity"
	"github.com/dicomshield/dicomshield/internal/store"
	"github.com/dicomshield/dicomshield/internal/ul"
)

// userAbortWithin is how soon after `user remove` returns the archive
// must have aborted the user's association and logged it: it looks at
// users.json every half second, and deciding and aborting take
// milliseconds; the rest is slack for a loaded, race-instrumented run.
const userAbortWithin = 1500 * time.Millisecond

// TestUserRemoveAbortsDCMTK: DCMTK's storescu sends a long series over one
// association, authenticated with -usr/-pwd. `user remove` of its own
// user mid-series ends the association within about a second: storescu
// reports the abort, every instance it had been answered for is kept, and
// nothing is answered after the archive logged the abort. `user remove` of
// another user mid-series leaves it alone, and the series completes.
func TestUserRemoveAbortsDCMTK(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	dicomtest.RequireDCMTK(t, "storescu")
	t.Cleanup(identity.SetParamsForTesting(cheapArgon))
	dir := filepath.Join(t.TempDir(), "data")
	al := newAlerts()
	s := startAuditedServer(t, dir, al, "", "")
	mod := addPeer(t, dir, "MODALITY1", "--allow", "echo,store", "--require-user")
	addUser(t, dir, "ct-tech", "modality", ctPass)
	addUser(t, dir, "alice", "viewer", alicePass)
	storescu := func(series *testSeries) *dicomtest.Process {
		return dicomtest.StartDCMTK(t, "storescu", "-v", "-aet", mod.AE, "-aec", archiveAE, "+tls", mod.KeyPath, mod.CertPath, "+cf", mod.CAPath,
			"-usr", "ct-tech", "-pwd", ctPass, "+sd", "127.0.0.1", port(t, s.TLSAddr), series.dir)
	}
	// underWay waits until the archive has stored at least n instances of
	// MODALITY1 since the log held mark stores.
	underWay := func(p *dicomtest.Process, mark, n int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for storesLogged(s.Logs, mod.AE)-mark < n {
			if exited, _ := p.Wait(0); exited || time.Now().After(deadline) {
				t.Fatalf("storescu stored too little (exited: %v):\n%s", exited, tail(p.Output(), 20))
			}
			time.Sleep(2 * time.Millisecond)
		}
	}

	t.Run("another user removed", func(t *testing.T) {
		series := writeSeries(t, 60)
		p := storescu(series)
		underWay(p, storesLogged(s.Logs, mod.AE), 3)
		// Paused mid-series, storescu holds the association open whatever
		// the speed of the machine, while the archive looks at the change.
		if err := p.Pause(); err != nil {
			t.Fatal(err)
		}
		if n := series.stored(t, s.A); n == len(series.uids) {
			t.Fatalf("the whole series was stored before storescu could be paused")
		}
		runCLI(t, "user", "remove", "alice", "--data", dir)
		// A witness authenticated as a third user, removed after the
		// change, shows that the archive has looked at users.json since.
		addUser(t, dir, "witness", "modality", "witness-passphrase")
		wcl := dialUser(t, s.TLSAddr, mod, "witness", "witness-passphrase")
		defer wcl.Abort()
		runCLI(t, "user", "remove", "witness", "--data", dir)
		waitUserAborted(t, al, "witness")
		if err := p.Resume(); err != nil {
			t.Fatal(err)
		}
		exited, err := p.Wait(2 * time.Minute)
		if !exited || err != nil {
			t.Fatalf("storescu after another user's removal: exited %v, %v\n%s", exited, err, tail(p.Output(), 20))
		}
		if n := series.stored(t, s.A); n != len(series.uids) {
			t.Errorf("%d of %d instances stored", n, len(series.uids))
		}
		if n := len(storescuAcked(p.Output())); n != len(series.uids) {
			t.Errorf("storescu was answered for %d of %d instances", n, len(series.uids))
		}
		if n := al.countUser(archive.AlertAbortedUser, "ct-tech"); n != 0 {
			t.Errorf("%d abort alerts for ct-tech, whose account did not change", n)
		}
	})

	t.Run("its user removed", func(t *testing.T) {
		// Far more than can be sent in the second the abort takes, on any
		// machine: the test does not wait for the series to end.
		series := writeSeries(t, 1500)
		p := storescu(series)
		underWay(p, storesLogged(s.Logs, mod.AE), 20)
		removed := time.Now()
		runCLI(t, "user", "remove", "ct-tech", "--data", dir)
		took := time.Since(removed)
		// The abort is logged within about a second of the removal.
		logged := waitLog(t, s.Logs, removed.Add(abortWithin), "open association aborted: its user was removed or changed", "user=ct-tech")
		after := time.Since(removed)
		if after > userAbortWithin+took {
			t.Errorf("association aborted %v after user remove (which took %v), want within %v", after, took, userAbortWithin)
		}
		// What the archive holds once the abort is logged: every answer
		// storescu got must be for one of these.
		atAbort := series.storedSet(t, s.A)
		acked := checkCutShort(t, s, p, series, atAbort)
		why, ok := al.findUser(archive.AlertAbortedUser, "ct-tech")
		if !ok || !strings.Contains(why, "user ct-tech was removed") {
			t.Errorf("alert %q (found %v), want it to say the user was removed", why, ok)
		}
		if strings.Contains(s.Logs.String(), ctPass) || strings.Contains(why, ctPass) {
			t.Error("the password is in the archive log or the alert")
		}
		t.Logf("aborted %v after user remove returned (it took %v), logged at %s; storescu answered for %d of %d, %d stored at the abort",
			after.Round(time.Millisecond), took.Round(time.Millisecond), logged, len(acked), len(series.uids), len(atAbort))
	})
}

// TestUserChangeAbortsOpenAssociations: each change of users.json is made
// while the user holds an association open (over TLS, proposing
// verification and storage): the association is aborted with a security
// alert and answers no more C-STOREs, or it is kept when the change takes
// nothing it can use. Associations without a user, with a user name only,
// and with a token are not the users file's to end.
func TestUserChangeAbortsOpenAssociations(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	t.Cleanup(identity.SetParamsForTesting(cheapArgon))
	iss := dicomtest.NewIssuer(t)
	dir := filepath.Join(t.TempDir(), "data")
	al := newAlerts()
	s := startAuditedServer(t, dir, al, "https://idp.test", iss.WriteJWKS(t))
	ws := addPeer(t, dir, "WS1", "--allow", "echo,store,find,get", "--require-user")
	open := addPeer(t, dir, "OPEN1", "--allow", "echo,store")

	// Bystanders, open through every change below: no user at all, and a
	// user name alone (type 1) whose local user is removed.
	addUser(t, dir, "nameonly", "viewer", "nameonly-passphrase")
	anon := mustDial(t, s.TLSAddr, open.AE, open.TLS(t))
	defer anon.Release()
	named := dialIdentity(t, s.TLSAddr, open, &ul.UserIdentity{Type: ul.IdentityUsername, Primary: []byte("nameonly")})
	defer named.Release()
	runCLI(t, "user", "remove", "nameonly", "--data", dir)

	tokenFor := func(sub, role string) *ul.UserIdentity {
		tok := iss.Sign(t, nil, map[string]any{"iss": "https://idp.test", "aud": "dicomshield", "sub": sub,
			"exp": time.Now().Add(10 * time.Minute).Unix(), "roles": role})
		return &ul.UserIdentity{Type: ul.IdentityJWT, Primary: []byte(tok)}
	}
	tests := []struct {
		name    string
		role    string
		token   bool // authenticate with a token for a user of that name, not the password
		change  func(user string)
		aborted bool
		why     string
	}{
		{"user removed", "modality", false, func(u string) { runCLI(t, "user", "remove", u, "--data", dir) }, true, "was removed"},
		{"password changed", "modality", false, func(u string) { setPassword(t, dir, u, "a brand new passphrase") }, true, "password of user"},
		{"role changed in users.json", "modality", false, func(u string) { setRole(t, dir, u, "viewer") }, true, "now of role viewer, may no longer store"},
		{"role widened in users.json", "modality", false, func(u string) { setRole(t, dir, u, "admin") }, false, ""},
		{"another user removed", "modality", false, func(u string) {
			addUser(t, dir, u+"-other", "modality", "other-passphrase")
			runCLI(t, "user", "remove", u+"-other", "--data", dir)
		}, false, ""},
		{"another user's password changed", "modality", false, func(u string) {
			addUser(t, dir, u+"-other", "modality", "other-passphrase")
			setPassword(t, dir, u+"-other", "a brand new passphrase")
		}, false, ""},
		{"token user, a local user of that name removed", "modality", true, func(u string) { runCLI(t, "user", "remove", u, "--data", dir) }, false, ""},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			user := "user" + string(rune('a'+i))
			pass := user + "-passphrase"
			addUser(t, dir, user, tc.role, pass)
			id := &ul.UserIdentity{Type: ul.IdentityUsernamePasscode, Primary: []byte(user), Secondary: []byte(pass)}
			if tc.token {
				id = tokenFor(user, tc.role)
			}
			cl := dialIdentity(t, s.TLSAddr, ws, id)
			defer cl.Abort()
			mustStore(t, cl, makeInstance(t, instanceSpec{}))
			tc.change(user)
			// A witness user, removed after the change, shows that the
			// archive has looked at users.json since.
			witness := user + "-witness"
			addUser(t, dir, witness, "modality", "witness-passphrase")
			wcl := dialUser(t, s.TLSAddr, ws, witness, "witness-passphrase")
			defer wcl.Abort()
			runCLI(t, "user", "remove", witness, "--data", dir)
			waitUserAborted(t, al, witness)
			if err := wcl.Echo(testCtx(t)); err == nil {
				t.Errorf("the witness's association still answers after its removal")
			}
			if !tc.aborted {
				if n := al.countUser(archive.AlertAbortedUser, user); n != 0 {
					t.Errorf("association aborted by a change that takes nothing it uses")
				}
				mustStore(t, cl, makeInstance(t, instanceSpec{}))
				return
			}
			why := waitUserAborted(t, al, user)
			if !strings.Contains(why, tc.why) {
				t.Errorf("alert says %q, want it to say %q", why, tc.why)
			}
			if strings.Contains(why, pass) || strings.Contains(s.Logs.String(), pass) {
				t.Errorf("the password is in the alert or the log")
			}
			if st, err := storeInst(t, cl, makeInstance(t, instanceSpec{})); err == nil {
				t.Fatalf("C-STORE after the abort answered 0x%04X", st)
			}
		})
	}
	for _, cl := range []*dimse.Client{anon, named} {
		mustStore(t, cl, makeInstance(t, instanceSpec{}))
	}
	if n := al.countFor(archive.AlertAbortedUser, open.AE) + al.countFor(archive.AlertAbortedRevoked, open.AE); n != 0 {
		t.Errorf("%d associations without a verified user were aborted", n)
	}
}

// TestUsersFileUnusable: a users.json that cannot be used refuses new
// password associations (rejected-transient), is logged once however
// often the archive looks, and ends no open association; fixed, it
// governs them again.
func TestUsersFileUnusable(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	t.Cleanup(identity.SetParamsForTesting(cheapArgon))
	dir := filepath.Join(t.TempDir(), "data")
	al := newAlerts()
	s := startAuditedServer(t, dir, al, "", "")
	ws := addPeer(t, dir, "WS1", "--allow", "echo,store", "--require-user")
	open := addPeer(t, dir, "OPEN1", "--allow", "echo,store")
	addUser(t, dir, "ct-tech", "modality", ctPass)
	cl := dialUser(t, s.TLSAddr, ws, "ct-tech", ctPass)
	defer cl.Abort()
	mustStore(t, cl, makeInstance(t, instanceSpec{}))

	path := filepath.Join(dir, identity.UsersFileName)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(`{"version":1,"users":[`), 0o600); err != nil {
		t.Fatal(err)
	}
	const unusable = "users file unusable"
	waitLog(t, s.Logs, time.Now().Add(abortWithin), unusable)
	mustStore(t, cl, makeInstance(t, instanceSpec{}))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = dimse.Dial(ctx, s.TLSAddr, &dimse.DialOptions{CallingAE: ws.AE, CalledAE: archiveAE, TLS: ws.TLS(t),
		Identity: &ul.UserIdentity{Type: ul.IdentityUsernamePasscode, Primary: []byte("ct-tech"), Secondary: []byte(ctPass)},
		Contexts: proposals(nil, nil)})
	if rj := rejection(t, err); rj.Result != ul.RejectTransient {
		t.Errorf("a password association with the users file unusable: %+v, want rejected-transient", rj)
	}
	// A peer that needs no user is not the users file's concern.
	other := mustDial(t, s.TLSAddr, open.AE, open.TLS(t))
	mustStore(t, other, makeInstance(t, instanceSpec{}))
	other.Release()
	// Three more looks: still logged once, still open.
	time.Sleep(3 * time.Second / 2)
	if n := strings.Count(s.Logs.String(), unusable); n != 1 {
		t.Errorf("the unusable users file was logged %d times, want once", n)
	}
	mustStore(t, cl, makeInstance(t, instanceSpec{}))
	if n := al.count(archive.AlertAbortedUser) + al.count(archive.AlertAbortedRevoked); n != 0 {
		t.Errorf("%d associations aborted over an unusable users file", n)
	}

	// Fixed, the file governs the open association again.
	if err := os.WriteFile(path, good, 0o600); err != nil {
		t.Fatal(err)
	}
	runCLI(t, "user", "remove", "ct-tech", "--data", dir)
	if why := waitUserAborted(t, al, "ct-tech"); !strings.Contains(why, "removed") {
		t.Errorf("alert says %q, want removed", why)
	}
}

// dialIdentity associates as peer b with the user identity id, proposing
// verification and storage.
func dialIdentity(t *testing.T, addr string, b bundle, id *ul.UserIdentity) *dimse.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := dimse.Dial(ctx, addr, &dimse.DialOptions{CallingAE: b.AE, CalledAE: archiveAE, TLS: b.TLS(t), Identity: id,
		Contexts: proposals([]string{scImage}, []string{dicom.ExplicitVRLittleEndianUID})})
	if err != nil {
		t.Fatalf("associating as %s (identity type %d): %v", b.AE, id.Type, err)
	}
	return cl
}

// setPassword runs `dicomshield user passwd` with the password on stdin.
func setPassword(t *testing.T, dir, user, pass string) {
	t.Helper()
	var out, errb bytes.Buffer
	if code := cli.MainInput([]string{"user", "passwd", user, "--password-stdin", "--data", dir},
		strings.NewReader(pass+"\n"), &out, &errb); code != 0 {
		t.Fatalf("user passwd %s: exit %d: %s", user, code, errb.String())
	}
}

// setRole changes a user's role in users.json as an administrator with an
// editor would (there is no command for it): the file decoded, the role
// changed, written to a new file renamed over the old one, mode 0600.
func setRole(t *testing.T, dir, user, role string) {
	t.Helper()
	path := filepath.Join(dir, identity.UsersFileName)
	var f struct {
		Version int              `json:"version"`
		Users   []map[string]any `json:"users"`
	}
	if err := json.Unmarshal(mustRead(t, path), &f); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, u := range f.Users {
		if u["name"] == user {
			u["role"], found = role, true
		}
	}
	if !found {
		t.Fatalf("no user %s in users.json", user)
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	tmp := path + ".edit"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// storesLogged counts the instances the archive logged as stored for
// calling AE title ae.
func storesLogged(logs *logBuffer, ae string) int {
	return strings.Count(logs.String(), "msg=stored calling_ae="+ae+" ")
}

// testSeries is a series written to its own folder.
type testSeries struct {
	dir   string
	study string
	uids  map[string]bool
}

// writeSeries writes n instances of one new series in a new study, each
// in a file named after its SOP Instance UID.
func writeSeries(t *testing.T, n int) *testSeries {
	t.Helper()
	ts := &testSeries{dir: t.TempDir(), study: newUID(), uids: map[string]bool{}}
	series := newUID()
	for i := range n {
		in := makeInstance(t, instanceSpec{Study: ts.study, Series: series, InstanceNumber: i + 1})
		in.writeFile(t, ts.dir)
		ts.uids[in.UID] = true
	}
	return ts
}

// storedSet returns the instances of the series the archive holds, in
// one query.
func (ts *testSeries) storedSet(t *testing.T, a *archive.Archive) map[string]bool {
	t.Helper()
	insts, err := a.Index.Instances(context.Background(), &store.Query{Level: "STUDY", Identifier: identifier("STUDY", dicom.TagStudyInstanceUID, ts.study)})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, in := range insts {
		out[in.SOPInstanceUID] = true
	}
	return out
}

func (ts *testSeries) stored(t *testing.T, a *archive.Archive) int { return len(ts.storedSet(t, a)) }

// storescuAcked returns the SOP Instance UIDs (file names) for which
// storescu -v logged a successful store response.
// checkCutShort checks a storescu whose association the archive aborted
// mid-series, atAbort being what the archive held when the abort was
// recorded: storescu ends with an error and says so, it was answered for
// part of the series only, every answer was for an instance stored by the
// abort and kept, and at most the C-STORE in progress was committed after
// it (its data had all arrived; it was never answered). It returns the
// instances storescu was answered for.
func checkCutShort(t *testing.T, s *testServer, p *dicomtest.Process, series *testSeries, atAbort map[string]bool) []string {
	t.Helper()
	exited, err := p.Wait(abortWithin)
	if !exited {
		t.Fatalf("storescu still running %v after the abort", abortWithin)
	}
	if err == nil {
		t.Errorf("storescu exited 0 after its association was aborted")
	}
	out := p.Output()
	if !strings.Contains(strings.ToLower(out), "abort") {
		t.Errorf("storescu did not report an abort:\n%s", tail(out, 20))
	}
	acked := storescuAcked(out)
	if len(acked) == 0 || len(acked) >= len(series.uids) {
		t.Fatalf("storescu was answered for %d of %d instances: the association was not used until the abort, or the abort did not cut the series",
			len(acked), len(series.uids))
	}
	for _, uid := range acked {
		if !series.uids[uid] {
			t.Fatalf("storescu was answered for %s, not of the series", uid)
		}
		if !atAbort[uid] {
			t.Errorf("instance %s was answered but not stored when the abort was recorded", uid)
		}
		if _, err := s.A.Index.Get(context.Background(), uid); err != nil {
			t.Errorf("instance %s, answered before the abort, is not kept: %v", uid, err)
		}
	}
	late := 0
	for uid := range series.storedSet(t, s.A) {
		if !atAbort[uid] {
			late++
		}
	}
	if late > 1 {
		t.Errorf("%d instances stored after the abort was recorded, want at most the one in progress", late)
	}
	return acked
}

func storescuAcked(out string) []string {
	var acked []string
	current := ""
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		l := sc.Text()
		if i := strings.Index(l, "Sending file: "); i >= 0 {
			current = strings.TrimSuffix(filepath.Base(strings.TrimSpace(l[i+len("Sending file: "):])), ".dcm")
			continue
		}
		if strings.Contains(l, "Received Store Response (Success)") && current != "" {
			acked = append(acked, current)
			current = ""
		}
	}
	return acked
}

// waitLog waits until a line of the archive log holds every one of want,
// failing the test at deadline, and returns the line's time.
func waitLog(t *testing.T, logs *logBuffer, deadline time.Time, want ...string) string {
	t.Helper()
	for {
		for _, l := range strings.Split(logs.String(), "\n") {
			if containsAll(l, want) {
				if f := strings.Fields(l); len(f) > 0 {
					return strings.TrimPrefix(f[0], "time=")
				}
				return ""
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no archive log line with %q", want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// dialUser associates as peer b authenticated as user with password pass,
// proposing verification and storage.
func dialUser(t *testing.T, addr string, b bundle, user, pass string) *dimse.Client {
	t.Helper()
	return dialIdentity(t, addr, b, &ul.UserIdentity{Type: ul.IdentityUsernamePasscode, Primary: []byte(user), Secondary: []byte(pass)})
}

// waitUserAborted waits until an alert about an association of user has
// been recorded, and returns its description.
func waitUserAborted(t *testing.T, al *alerts, user string) string {
	t.Helper()
	timeout := time.After(abortWithin)
	for {
		if why, ok := al.findUser(archive.AlertAbortedUser, user); ok {
			return why
		}
		select {
		case <-al.ch:
		case <-timeout:
			t.Fatalf("no %q alert for user %s within %v", archive.AlertAbortedUser, user, abortWithin)
			return ""
		}
	}
}

// findUser returns the description of the first alert named name about
// an association of user.
func (r *alerts) findUser(name, user string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ev := range r.evs {
		if ev.Alert == name && ev.User == user {
			return ev.Description, true
		}
	}
	return "", false
}

// countUser counts the alerts named name about associations of user.
func (r *alerts) countUser(name, user string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, ev := range r.evs {
		if ev.Alert == name && ev.User == user {
			n++
		}
	}
	return n
}
