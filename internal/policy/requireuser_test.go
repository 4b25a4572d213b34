package policy

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRequireUserPersists: require_user survives a write and a re-read,
// and is left out of peers.json for peers without it (files written
// before it existed read the same).
func TestRequireUserPersists(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), PeersFileName)
	r := openReg(t, path)
	for _, p := range []Peer{
		{AETitle: "WS1", Hosts: mustHosts(t, "127.0.0.1"), Rights: []Right{RightFind}, RequireUser: true},
		{AETitle: "CT1", Hosts: mustHosts(t, "127.0.0.1"), Rights: []Right{RightStore}},
	} {
		if err := r.Put(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), `"require_user": true`); n != 1 || strings.Contains(string(data), `"require_user": false`) {
		t.Fatalf("peers.json holds require_user %d times:\n%s", n, data)
	}
	r2 := openReg(t, path)
	for ae, want := range map[string]bool{"WS1": true, "CT1": false} {
		p, err := r2.Get(ctx, ae)
		if err != nil || p.RequireUser != want {
			t.Errorf("%s after re-reading: %+v, %v; want RequireUser %v", ae, p, err, want)
		}
	}
}
