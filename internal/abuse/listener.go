package abuse

import (
	"net"
	"net/netip"
	"sync"
)

// Listener applies a Guard to the connections of a net.Listener: Accept
// closes a refused connection at once, before anything is read from it
// (with a reset, so that no TIME_WAIT state is kept for it), and returns
// only admitted ones. An admitted connection is released in the Guard
// when it is first closed. Connections whose remote address is not an IP
// address (Unix sockets) are passed through unjudged.
type Listener struct {
	net.Listener
	Guard *Guard
	// Refused, when set, is called on Accept's goroutine after each
	// refused connection was closed: it should be quick (log, audit).
	Refused func(addr netip.Addr, v Verdict)
}

// Accept returns the next connection the Guard admits.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		addr, ok := RemoteIP(c.RemoteAddr())
		if !ok {
			return c, nil
		}
		v := l.Guard.Admit(addr)
		if v.Reason == Allowed {
			return &guardedConn{Conn: c, g: l.Guard, addr: addr}, nil
		}
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		c.Close()
		if l.Refused != nil {
			l.Refused(addr, v)
		}
	}
}

// RemoteIP returns the IP address of a TCP or UDP address (IPv4-mapped
// addresses as IPv4).
func RemoteIP(a net.Addr) (netip.Addr, bool) {
	switch a := a.(type) {
	case *net.TCPAddr:
		ip, ok := netip.AddrFromSlice(a.IP)
		return ip.Unmap(), ok
	case *net.UDPAddr:
		ip, ok := netip.AddrFromSlice(a.IP)
		return ip.Unmap(), ok
	}
	if a == nil {
		return netip.Addr{}, false
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap(), true
}

// guardedConn releases its address in the Guard when first closed.
type guardedConn struct {
	net.Conn
	g    *Guard
	addr netip.Addr
	once sync.Once
}

func (c *guardedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.g.Release(c.addr) })
	return err
}
