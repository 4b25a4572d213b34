package archive

import "strings"

// PeerAssociations returns the associations the per-peer limit counts
// for the AE title ae: open ones and those accept reserved a slot for.
func (a *Archive) PeerAssociations(ae string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.perPeer[strings.TrimSpace(ae)]
}
