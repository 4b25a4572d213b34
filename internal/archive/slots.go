package archive

import (
	"net"
	"strings"
	"sync"
)

// Per-peer association slots (Limits.MaxAssociationsPerPeer). accept
// checks the peer's count and takes a slot in one step under a.mu, so
// that requests arriving together cannot all pass the check before any
// of them is counted. The slot is given back exactly once: by accept
// itself when it refuses after taking it (user identity) or fails, by
// connState when the association ends, or by notEstablished when the
// server could not send the A-ASSOCIATE-AC. Between accept and
// establishment, a slot is found by the connection's remote address, the
// one thing notEstablished is told.

// slot is one association's place in its peer's count.
type slot struct {
	a    *Archive
	ae   string
	once sync.Once
}

// reserveSlot takes a slot for the peer ae when it has fewer than max
// (no bound when max <= 0). It returns nil and the peer's count when all
// are taken.
func (a *Archive) reserveSlot(ae string, max int) (*slot, int) {
	ae = strings.TrimSpace(ae)
	a.mu.Lock()
	defer a.mu.Unlock()
	n := a.perPeer[ae]
	if max > 0 && n >= max {
		return nil, n
	}
	a.perPeer[ae] = n + 1
	return &slot{a: a, ae: ae}, n
}

// release gives the slot back; later calls do nothing.
func (s *slot) release() {
	s.once.Do(func() {
		a := s.a
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.perPeer[s.ae]--; a.perPeer[s.ae] <= 0 {
			delete(a.perPeer, s.ae)
		}
	})
}

// holdSlot keeps an accepted association's slot until it is established
// or not.
func (a *Archive) holdSlot(remote net.Addr, s *slot) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pending[remote.String()] = s
}

// slotEstablished: the association of remote is established; its slot
// is now given back through its session when it ends.
func (a *Archive) slotEstablished(remote net.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.pending, remote.String())
}

// slotNotEstablished gives back the slot of an association accept let in
// but that was never established.
func (a *Archive) slotNotEstablished(remote net.Addr) {
	a.mu.Lock()
	s := a.pending[remote.String()]
	delete(a.pending, remote.String())
	a.mu.Unlock()
	if s != nil {
		s.release()
	}
}
