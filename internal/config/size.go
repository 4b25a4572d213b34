package config

import (
	"fmt"
	"math"
	"strings"
)

var sizeUnits = []struct {
	name string
	mult int64
}{
	// Longest names first so that "KiB" is not read as "B".
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
	{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"t", 1 << 40},
	{"b", 1},
}

// ParseSize parses a size such as "4GiB", "500MB", "512 MiB" or "1048576"
// (bytes). KiB, MiB, GiB and TiB (and the short K, M, G, T) are powers of
// 1024; KB, MB, GB and TB are powers of 1000. Units are not case
// sensitive; the number must be a whole number.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	num, unit := t, ""
	if i := strings.IndexFunc(t, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		num, unit = t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	}
	if num == "" {
		return 0, fmt.Errorf("%q is not a size; write a whole number followed by a unit, such as \"4GiB\" or \"500MiB\"", s)
	}
	mult := int64(-1)
	if unit == "" {
		mult = 1
	}
	for _, u := range sizeUnits {
		if unit == u.name {
			mult = u.mult
			break
		}
	}
	if mult < 0 {
		return 0, fmt.Errorf("%q has an unknown unit %q; use B, KiB, MiB, GiB or TiB (or KB, MB, GB, TB for powers of 1000)", s, strings.TrimSpace(t[len(num):]))
	}
	var n int64
	for _, c := range num {
		d := int64(c - '0')
		if n > (math.MaxInt64-d)/10 {
			return 0, fmt.Errorf("%q is far too large", s)
		}
		n = n*10 + d
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is far too large", s)
	}
	return n * mult, nil
}

// FormatSize writes n bytes in the largest binary unit that divides it
// exactly, the inverse of ParseSize.
func FormatSize(n int64) string {
	for _, u := range []struct {
		name string
		mult int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.mult == 0 {
			return fmt.Sprintf("%d%s", n/u.mult, u.name)
		}
	}
	return fmt.Sprintf("%dB", n)
}
