package identity_test

// What a server needs to decide its open associations again when users.json
// changes: Generation to notice the change cheaply, Recheck to decide one
// authenticated user against the file as it is now.

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dicomshield/dicomshield/internal/identity"
	"github.com/dicomshield/dicomshield/internal/policy"
	"github.com/dicomshield/dicomshield/internal/ul"
)

// TestUsersGeneration: Generation changes with every change another
// process makes (user added, password changed to a file of the same size,
// user removed, an edit in place, an unusable file, the file deleted) and
// stays put while nothing changes.
func TestUsersGeneration(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), identity.UsersFileName)
	server, err := identity.OpenUsers(path)
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	cli, err := identity.OpenUsers(path)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	gen := func() (uint64, error) { return server.Generation() }
	last, err := gen()
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name    string
		change  func() error
		changed bool
		usable  bool
	}{
		{"nothing", func() error { return nil }, false, true},
		{"user added", func() error { return cli.Add(ctx, "alice", identity.RoleModality, "alice's passphrase") }, true, true},
		{"read again", func() error { _, err := server.List(ctx); return err }, false, true},
		// A new hash is as long as the old one: the file keeps its size.
		{"password changed", func() error { return cli.SetPassword(ctx, "alice", "another passphrase") }, true, true},
		{"role edited by hand", func() error { return editUsers(path, `"role": "modality"`, `"role": "viewer"`) }, true, true},
		{"made unusable", func() error { return os.WriteFile(path, []byte("{"), 0o600) }, true, false},
		{"still unusable", func() error { return nil }, false, false},
		{"file deleted", func() error { return os.Remove(path) }, true, true},
		{"still deleted", func() error { return nil }, false, true},
		{"user added again", func() error { return cli.Add(ctx, "alice", identity.RoleModality, "alice's passphrase") }, true, true},
		{"user removed", func() error { return cli.Remove(ctx, "alice") }, true, true},
	}
	for _, st := range steps {
		if err := st.change(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		g, err := gen()
		if (g != last) != st.changed {
			t.Errorf("%s: generation %d -> %d, want changed=%v", st.name, last, g, st.changed)
		}
		if (err == nil) != st.usable || (err != nil && !errors.Is(err, identity.ErrUnavailable)) {
			t.Errorf("%s: error %v, want usable=%v", st.name, err, st.usable)
		}
		last = g
	}
}

// editUsers replaces old by new in the users file at path, in place (the
// same inode, as an editor that writes over the file would).
func editUsers(path, old, new string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if !strings.Contains(string(b), old) {
		return errors.New("users file does not hold " + old)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	if _, err := f.Write([]byte(strings.Replace(string(b), old, new, 1))); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// TestRecheck: a user authenticated with a password is decided again
// against each change of the users file; tokens and bare user names are
// not the file's to decide.
func TestRecheck(t *testing.T) {
	ctx := context.Background()
	const pass = "bob's long passphrase"
	tests := []struct {
		name       string
		change     func(t *testing.T, u *identity.Users) // another process's change after the authentication
		why        string                                // in the reason the authentication no longer holds; "" if it holds
		wantRights string                                // the user's rights now, when it holds
		unusable   bool
	}{
		{"nothing changed", func(*testing.T, *identity.Users) {}, "", "echo,store", false},
		{"another user removed", func(t *testing.T, u *identity.Users) { must(t, u.Remove(ctx, "carol")) }, "", "echo,store", false},
		{"another user's password changed", func(t *testing.T, u *identity.Users) { must(t, u.SetPassword(ctx, "carol", "carol's new passphrase")) }, "", "echo,store", false},
		{"removed", func(t *testing.T, u *identity.Users) { must(t, u.Remove(ctx, "bob")) }, "user bob was removed", "", false},
		{"password changed", func(t *testing.T, u *identity.Users) { must(t, u.SetPassword(ctx, "bob", "bob's new passphrase")) }, "password of user bob was changed", "", false},
		{"password set to the same", func(t *testing.T, u *identity.Users) { must(t, u.SetPassword(ctx, "bob", pass)) }, "password of user bob was changed", "", false},
		{"removed and added again", func(t *testing.T, u *identity.Users) {
			must(t, u.Remove(ctx, "bob"))
			must(t, u.Add(ctx, "bob", identity.RoleModality, pass))
		}, "password of user bob was changed", "", false},
		{"role changed by hand", func(t *testing.T, u *identity.Users) {
			must(t, editUsers(u.Path(), `"role": "modality"`, `"role": "viewer"`))
		}, "", "echo,find,get", false},
		{"role widened by hand", func(t *testing.T, u *identity.Users) {
			must(t, editUsers(u.Path(), `"role": "modality"`, `"role": "admin"`))
		}, "", "echo,store,find,get,move", false},
		{"file unusable", func(t *testing.T, u *identity.Users) { must(t, os.WriteFile(u.Path(), []byte("{"), 0o600)) }, "", "", true},
		{"file readable by others", func(t *testing.T, u *identity.Users) { must(t, os.Chmod(u.Path(), 0o644)) }, "", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := newUsers(t)
			must(t, u.Add(ctx, "bob", identity.RoleModality, pass))
			must(t, u.Add(ctx, "carol", identity.RoleViewer, "carol's passphrase"))
			a := identity.NewAuthenticator(u, nil)
			res, err := a.Authenticate(ctx, &ul.UserIdentity{Type: ul.IdentityUsernamePasscode, Primary: []byte("bob"), Secondary: []byte(pass)})
			if err != nil {
				t.Fatal(err)
			}
			// The change is made the way `dicomshield user` makes it: by
			// another process with its own view of the file.
			other, err := identity.OpenUsers(u.Path())
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			tc.change(t, other)
			now, why, err := a.Recheck(ctx, res)
			if tc.unusable {
				if !errors.Is(err, identity.ErrUnavailable) || why != "" || now != nil {
					t.Fatalf("got %v, %q, %v; want ErrUnavailable and nothing decided", now, why, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.why != "" {
				if !strings.Contains(why, tc.why) || now != nil {
					t.Fatalf("got %v, %q; want the authentication ended: %q", now, why, tc.why)
				}
				if strings.Contains(why, pass) {
					t.Fatalf("the reason %q shows the password", why)
				}
				return
			}
			if why != "" || now == nil {
				t.Fatalf("got %v, %q; want the authentication to hold", now, why)
			}
			if got := policy.FormatRights(now.Rights); got != tc.wantRights || now.Name != "bob" || !now.Verified {
				t.Fatalf("user now %+v (rights %s), want bob with %s", now, got, tc.wantRights)
			}
		})
	}
}

// TestRecheckLeavesOthers: a token user (the issuer's, not the file's,
// even with a local user of the same name removed) and a bare user name
// come back as they were, whatever the file says.
func TestRecheckLeavesOthers(t *testing.T) {
	ctx := context.Background()
	u := newUsers(t)
	must(t, u.Add(ctx, "dr-token", identity.RoleModality, "a long passphrase"))
	must(t, u.Remove(ctx, "dr-token"))
	a := identity.NewAuthenticator(u, nil)
	named, err := a.Authenticate(ctx, &ul.UserIdentity{Type: ul.IdentityUsername, Primary: []byte("nobody")})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		res  *identity.Result
	}{
		{"token", &identity.Result{Name: "dr-token", Verified: true, Method: identity.MethodJWT, Roles: []identity.Role{identity.RoleViewer},
			Rights: identity.RightsOf([]identity.Role{identity.RoleViewer})}},
		{"user name only", named},
		{"none", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now, why, err := a.Recheck(ctx, tc.res)
			if err != nil || why != "" || now != tc.res {
				t.Fatalf("got %+v, %q, %v; want the result back unchanged", now, why, err)
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
