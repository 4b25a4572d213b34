package scan

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math/big"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// DefaultPorts are the ports scanned when none are given: 104 (acr-nema),
// 2761 (dicom-iscl), 2762 (dicom-tls), 4242 (Orthanc's default) and 11112
// (dicom), the registered and de-facto DICOM ports (THREATS.md).
var DefaultPorts = []int{104, 2761, 2762, 4242, 11112}

// MaxTargetAddresses bounds the addresses of one target: a /8 (16.7 M) is
// the largest network a national CERT scans in one run; anything larger
// is almost certainly a typing mistake (an IPv6 /64 would never end).
const MaxTargetAddresses = 1 << 24

// Errors of target parsing.
var (
	ErrBadTarget = errors.New("scan: not a target")
	ErrTooLarge  = errors.New("scan: target too large")
)

// Target is one entry of the target list: a range of addresses (one
// address, a CIDR or a first-last range), or a host name to resolve, with
// an optional port that overrides the scanned ports.
type Target struct {
	Name       string     // a host name, before Resolve; "" for addresses
	First, End netip.Addr // inclusive range
	Port       int        // 0: every scanned port
}

// Endpoint is one service to probe.
type Endpoint struct {
	Addr netip.Addr
	Port int
}

// String is host:port, IPv6 in brackets.
func (e Endpoint) String() string { return netip.AddrPortFrom(e.Addr, uint16(e.Port)).String() }

// ParseTarget parses one target: 10.0.0.5, pacs.example.org, 10.0.0.0/24,
// 10.0.0.1-40, 10.0.0.1-10.0.1.255, 10.0.0.5:11112, [2001:db8::5]:104,
// pacs.example.org:4242.
func ParseTarget(s string) (Target, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Target{}, fmt.Errorf("%w: empty", ErrBadTarget)
	}
	var t Target
	// host:port (an IPv6 address with a port is bracketed).
	if ap, err := netip.ParseAddrPort(s); err == nil {
		t.First, t.End, t.Port = ap.Addr().Unmap(), ap.Addr().Unmap(), int(ap.Port())
		if t.Port == 0 {
			return Target{}, fmt.Errorf("%w: port 0 in %q", ErrBadTarget, s)
		}
		return t, nil
	}
	if h, p, err := net.SplitHostPort(s); err == nil && !strings.Contains(h, ":") {
		port, err := parsePort(p)
		if err != nil {
			return Target{}, fmt.Errorf("%w: %q: %v", ErrBadTarget, s, err)
		}
		t, err := ParseTarget(h)
		if err != nil {
			return Target{}, err
		}
		t.Port = port
		return t, nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		a = a.Unmap()
		return Target{First: a, End: a}, nil
	}
	if p, err := netip.ParsePrefix(s); err == nil {
		p = p.Masked()
		if p.Addr().BitLen()-p.Bits() > 24 {
			return Target{}, fmt.Errorf("%w: %s holds more than %d addresses", ErrTooLarge, s, MaxTargetAddresses)
		}
		return Target{First: p.Addr(), End: lastOf(p)}, nil
	}
	if i := strings.IndexByte(s, '-'); i > 0 {
		first, err := netip.ParseAddr(s[:i])
		if err == nil {
			rest := s[i+1:]
			end, err := netip.ParseAddr(rest)
			if err != nil && first.Is4() {
				// 10.0.0.1-40: the last octet.
				n, perr := strconv.Atoi(rest)
				if perr != nil || n < 0 || n > 255 {
					return Target{}, fmt.Errorf("%w: %q: range end %q", ErrBadTarget, s, rest)
				}
				b := first.As4()
				b[3] = byte(n)
				end, err = netip.AddrFrom4(b), nil
			}
			if err != nil || first.Is4() != end.Is4() || end.Less(first) {
				return Target{}, fmt.Errorf("%w: %q: not a range of addresses", ErrBadTarget, s)
			}
			t := Target{First: first, End: end}
			if t.Size() > MaxTargetAddresses {
				return Target{}, fmt.Errorf("%w: %s holds more than %d addresses", ErrTooLarge, s, MaxTargetAddresses)
			}
			return t, nil
		}
	}
	if validHostName(s) {
		return Target{Name: s}, nil
	}
	return Target{}, fmt.Errorf("%w: %q", ErrBadTarget, s)
}

func parsePort(p string) (int, error) {
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %q is not 1-65535", p)
	}
	return n, nil
}

// validHostName accepts DNS names (letters, digits, hyphens, dots).
func validHostName(s string) bool {
	if len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// lastOf is the last address of a masked prefix.
func lastOf(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// Size is the number of addresses in t (1 for a name).
func (t Target) Size() int64 {
	if t.Name != "" {
		return 1
	}
	f, e := new(big.Int).SetBytes(t.First.AsSlice()), new(big.Int).SetBytes(t.End.AsSlice())
	n := new(big.Int).Sub(e, f)
	n.Add(n, big.NewInt(1))
	if !n.IsInt64() {
		return 1 << 62
	}
	return n.Int64()
}

// Contains reports whether a is in the range of t.
func (t Target) Contains(a netip.Addr) bool {
	return t.Name == "" && a.BitLen() == t.First.BitLen() && !a.Less(t.First) && !t.End.Less(a)
}

// Resolve turns a named target into its first address (IPv4 preferred,
// since DICOM devices rarely listen on IPv6).
func (t *Target) Resolve(ctx context.Context, r *net.Resolver) error {
	if t.Name == "" {
		return nil
	}
	if r == nil {
		r = net.DefaultResolver
	}
	addrs, err := r.LookupNetIP(ctx, "ip", t.Name)
	if err != nil || len(addrs) == 0 {
		return fmt.Errorf("scan: resolving %s: %w", t.Name, err)
	}
	pick := addrs[0]
	for _, a := range addrs {
		if a.Unmap().Is4() {
			pick = a
			break
		}
	}
	pick = pick.Unmap()
	t.First, t.End, t.Name = pick, pick, ""
	return nil
}

// localPrefixes are the networks a scan may target without accepting the
// risk of scanning others' networks: loopback, RFC 1918 and RFC 4193
// private space, and link-local addresses, none of which is routed on the
// internet.
var localPrefixes = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("fc00::/7"),
	netip.MustParsePrefix("fe80::/10"),
}

// Local reports whether every address of the (resolved) target lies in
// loopback or private space.
func (t Target) Local() bool {
	for _, p := range localPrefixes {
		if p.Contains(t.First) && p.Contains(t.End) {
			return true
		}
	}
	return false
}

// ParseLine parses one line of a target file: any number of targets
// separated by blanks or commas, or a line of masscan output (-oL list,
// -oG grepable, or its "Discovered open port" console lines) or ZMap
// output (an address per line, or CSV whose first field is the address
// and whose second, when numeric, is the port). Comments (#) and blank
// lines yield nothing; a CSV header line (no address in its first field)
// is skipped, so comma-separated lists take addresses, not host names.
func ParseLine(line string) ([]Target, error) {
	line = strings.TrimSpace(line)
	if line == "" || line[0] == '#' {
		return nil, nil
	}
	f := strings.Fields(line)
	switch {
	case len(f) >= 4 && f[0] == "open" && (f[1] == "tcp" || f[1] == "udp"): // masscan -oL
		return oneAt(f[3], f[2])
	case len(f) >= 6 && f[0] == "Discovered" && f[1] == "open" && f[2] == "port": // masscan console
		port, _, _ := strings.Cut(f[3], "/")
		return oneAt(f[5], port)
	case strings.Contains(line, "Host:") && strings.Contains(line, "Ports:"): // masscan -oG
		i := strings.Index(line, "Host:")
		hf := strings.Fields(line[i+len("Host:"):])
		j := strings.Index(line, "Ports:")
		pf := strings.Fields(line[j+len("Ports:"):])
		if len(hf) == 0 || len(pf) == 0 {
			return nil, fmt.Errorf("%w: grepable line without host or port", ErrBadTarget)
		}
		port, _, _ := strings.Cut(pf[0], "/")
		return oneAt(hf[0], port)
	case strings.Contains(line, ",") && !strings.Contains(line, " "): // ZMap CSV, or a comma list
		cf := strings.Split(line, ",")
		if _, err := netip.ParseAddr(cf[0]); err == nil && len(cf) >= 2 {
			if _, perr := parsePort(cf[1]); perr == nil {
				return oneAt(cf[0], cf[1])
			}
			if _, aerr := netip.ParseAddr(cf[1]); aerr != nil {
				return oneAt(cf[0], "")
			}
		} else if err != nil {
			// Comma lists take addresses, CIDRs and ranges, not names:
			// a first field that is none of them is a CSV header.
			if t, terr := ParseTarget(cf[0]); terr != nil || t.Name != "" {
				return nil, nil
			}
		}
		f = cf
	}
	var out []Target
	for _, s := range f {
		for _, s := range strings.Split(s, ",") {
			if s == "" {
				continue
			}
			t, err := ParseTarget(s)
			if err != nil {
				return nil, err
			}
			out = append(out, t)
		}
	}
	return out, nil
}

// oneAt is the single target addr (with port, when port is not empty).
func oneAt(addr, port string) ([]Target, error) {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return nil, fmt.Errorf("%w: %q is not an address", ErrBadTarget, addr)
	}
	a = a.Unmap()
	t := Target{First: a, End: a}
	if port != "" {
		if t.Port, err = parsePort(port); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadTarget, err)
		}
	}
	return []Target{t}, nil
}

// ParsePorts parses a port list: 104,11112 or 100-110 or both.
func ParsePorts(s string) ([]int, error) {
	var out []int
	seen := map[int]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := parsePort(lo)
		if err != nil {
			return nil, err
		}
		b := a
		if isRange {
			if b, err = parsePort(hi); err != nil {
				return nil, err
			}
		}
		if b < a {
			return nil, fmt.Errorf("port range %q runs backwards", part)
		}
		for p := a; p <= b; p++ {
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	return out, nil
}

// TargetSet is the resolved targets, the ports and the exclusions.
type TargetSet struct {
	Targets []Target // resolved (no names)
	Exclude []Target
	Ports   []int
}

// Count is the number of endpoints Endpoints yields at most (exclusions
// not subtracted).
func (s *TargetSet) Count() int64 {
	var n int64
	for _, t := range s.Targets {
		k := int64(len(s.Ports))
		if t.Port != 0 {
			k = 1
		}
		n += t.Size() * k
	}
	return n
}

// Endpoints yields every address and port to probe, address by address,
// skipping excluded addresses.
func (s *TargetSet) Endpoints() iter.Seq[Endpoint] {
	return func(yield func(Endpoint) bool) {
		for _, t := range s.Targets {
			if t.Name != "" || !t.First.IsValid() {
				continue
			}
			for a := t.First; a.IsValid() && !t.End.Less(a); a = a.Next() {
				if s.excluded(a) {
					continue
				}
				if t.Port != 0 {
					if !yield(Endpoint{a, t.Port}) {
						return
					}
					continue
				}
				for _, p := range s.Ports {
					if !yield(Endpoint{a, p}) {
						return
					}
				}
				if a == t.End {
					break
				}
			}
		}
	}
}

func (s *TargetSet) excluded(a netip.Addr) bool {
	for _, x := range s.Exclude {
		if x.Contains(a) {
			return true
		}
	}
	return false
}
