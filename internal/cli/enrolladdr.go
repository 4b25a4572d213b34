package cli

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"

	"github.com/dicomshield/dicomshield/internal/config"
)

// enrollAddrs returns the addresses a device can give `enroll --server`,
// best first: serverName when set (its port, or the enrolment listener's);
// otherwise the listener's own address when it is bound to one, else the
// server certificate's host names (hostnames in the config) and the
// machine's addresses (ifaces), leaving out loopback, link-local and
// unspecified ones, which no device can use. When nothing else is known,
// loopback is all there is. listen must not be empty.
func enrollAddrs(listen string, hostnames []string, ifaces []netip.Addr, serverName string) ([]string, error) {
	lhost, port, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("[enroll] listen %q: %w", listen, err)
	}
	if serverName = strings.TrimSpace(serverName); serverName != "" {
		if _, _, err := net.SplitHostPort(serverName); err == nil {
			return []string{serverName}, nil
		}
		return []string{net.JoinHostPort(strings.Trim(serverName, "[]"), port)}, nil
	}
	var out []string
	add := func(h string) {
		a := net.JoinHostPort(h, port)
		for _, o := range out {
			if o == a {
				return
			}
		}
		out = append(out, a)
	}
	usable := func(h string) bool {
		if h == "" || strings.EqualFold(h, "localhost") {
			return false
		}
		if ip, err := netip.ParseAddr(h); err == nil {
			return !ip.IsLoopback() && !ip.IsUnspecified() && !ip.IsLinkLocalUnicast() && !ip.IsMulticast()
		}
		return true
	}
	if ip, err := netip.ParseAddr(lhost); err == nil && !ip.IsUnspecified() {
		// Bound to one address: the only one that works.
		return []string{net.JoinHostPort(ip.Unmap().String(), port)}, nil
	}
	for _, h := range hostnames {
		if usable(h) {
			add(h)
		}
	}
	for _, ip := range ifaces {
		if ip = ip.Unmap(); usable(ip.String()) {
			add(ip.String())
		}
	}
	if len(out) == 0 {
		add("127.0.0.1")
	}
	return out, nil
}

// machineAddrs lists the addresses of this machine's interfaces.
func machineAddrs() []netip.Addr {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr())
		}
	}
	return out
}

// printEnrollServer tells where the device enrols.
func printEnrollServer(w io.Writer, cfg *config.Config, serverName string) error {
	listen := cfg.Enroll.Listen
	if listen == "" {
		fmt.Fprintln(w, "note: enrolment is off in the config ([enroll] listen); turn it on before the device enrols")
		listen = config.DefaultEnrollListen
	}
	addrs, err := enrollAddrs(listen, cfg.Hostnames, machineAddrs(), serverName)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "on the device: dicomshield enroll --token TOKEN --server %s --out DIR\n", addrs[0])
	if len(addrs) > 1 {
		fmt.Fprintf(w, "  (or --server %s: use one the device reaches; --server-name sets it)\n", strings.Join(addrs[1:], ", "))
	}
	if ap, err := netip.ParseAddrPort(addrs[0]); err == nil && ap.Addr().IsLoopback() && serverName == "" {
		fmt.Fprintln(w, "note: this machine shows no address a device could reach; give the one it uses with --server-name")
	}
	return nil
}
