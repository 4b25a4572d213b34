package abuse

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/dicomshield/dicomshield/internal/dicomtest"
)

// TestListener: on a real loopback listener, refused connections are
// closed before anything is read and reported through Refused; admitted
// ones are released when closed, once.
func TestListener(t *testing.T) {
	dicomtest.CheckGoroutines(t)
	c := newClock()
	g := New(Limits{MaxOpenPerAddress: 2, RejectionsBeforeBan: 1, BanDuration: time.Hour}, c.now)
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := make(chan Reason, 10)
	l := &Listener{Listener: inner, Guard: g, Refused: func(a netip.Addr, v Verdict) {
		if a == addrA {
			refused <- v.Reason
		}
	}}
	// wantRefused checks the next report of Refused (it comes a moment
	// after the peer saw its connection closed).
	wantRefused := func(want Reason) {
		t.Helper()
		select {
		case r := <-refused:
			if r != want {
				t.Fatalf("Refused saw %v, want %v", r, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("Refused not called, want %v", want)
		}
	}
	accepted := make(chan net.Conn, 10)
	done := make(chan error, 1)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				done <- err
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	t.Cleanup(func() {
		l.Close()
		if err := <-done; !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close: %v", err)
		}
		for c := range accepted {
			c.Close()
		}
	})
	dial := func() net.Conn {
		t.Helper()
		c, err := net.DialTimeout("tcp", inner.Addr().String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// isRefused dials and reports whether the server closed the
	// connection without sending anything (its reset may even arrive
	// before the dial returns).
	isRefused := func() bool {
		t.Helper()
		c, err := net.DialTimeout("tcp", inner.Addr().String(), 5*time.Second)
		if err != nil {
			return errors.Is(err, syscall.ECONNRESET)
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Read(make([]byte, 1))
		var ne net.Error
		return err != nil && !(errors.As(err, &ne) && ne.Timeout())
	}
	next := func() net.Conn {
		t.Helper()
		select {
		case c := <-accepted:
			return c
		case <-time.After(5 * time.Second):
			t.Fatal("no connection accepted")
			return nil
		}
	}

	dial()
	dial()
	s1, s2 := next(), next()
	if n := g.Open(addrA); n != 2 {
		t.Fatalf("open = %d, want 2", n)
	}
	if !isRefused() {
		t.Fatal("third connection from one address was not closed")
	}
	wantRefused(TooManyOpen)
	s1.Close()
	s1.Close() // released once only
	if n := g.Open(addrA); n != 1 {
		t.Fatalf("open after one close (twice) = %d, want 1", n)
	}
	fourth := dial()
	s4 := next()
	if _, err := fourth.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	s4.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(s4, b); err != nil || b[0] != 'x' {
		t.Fatalf("admitted connection does not carry data: %v", err)
	}
	s2.Close()
	s4.Close()

	if v := g.Reject(addrA); v.Reason != Banned {
		t.Fatalf("Reject = %v, want a ban", v.Reason)
	}
	if !isRefused() {
		t.Fatal("connection from a banned address was not closed")
	}
	wantRefused(Banned)
}

func TestRemoteIP(t *testing.T) {
	for _, tc := range []struct {
		addr net.Addr
		want string
		ok   bool
	}{
		{&net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 5}, "127.0.0.1", true},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:10.0.0.1"), Port: 5}, "10.0.0.1", true},
		{&net.TCPAddr{IP: net.ParseIP("::1"), Port: 5}, "::1", true},
		{&net.UnixAddr{Name: "/tmp/x", Net: "unix"}, "", false},
		{nil, "", false},
	} {
		got, ok := RemoteIP(tc.addr)
		if ok != tc.ok || (ok && got.String() != tc.want) {
			t.Errorf("RemoteIP(%v) = %v, %v; want %s, %v", tc.addr, got, ok, tc.want, tc.ok)
		}
	}
}
