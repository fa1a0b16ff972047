// Package rules is the access control both the sockplay host and the SDK
// enforce where connections are accepted and datagrams received: allow and
// deny lists of CIDRs (deny wins; with no allow list everyone is allowed),
// the most connections open at once, the most open from one source, a token
// bucket of new connections (or datagrams) per source, and the PROXY protocol
// from trusted proxies. The host enforces when it accepts (conn handoff), the
// SDK when the plugin accepts on a shared listener, reads PROXY headers, or
// receives datagrams; both import this one package, so the rules mean the
// same thing wherever they run.
//
// The rules travel as a protocol.Rules (control.proto); Compile checks one
// and turns it into a Rules; a Gate enforces a Rules and keeps the counts,
// and its rules can be replaced while it runs (SetRules) without losing them.
//
// A source is a client's IP address; IPv6 sources are counted by their /64
// prefix, since one host commonly owns a whole /64 (RFC 4291's interface
// identifiers; the same grouping Linux's and nginx's per-source limits
// recommend). Limits in the style of xinetd's only_from, no_access,
// instances, per_source and cps, and of tcpserver's rules and -c.
package rules

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/sockplay/sockplay/sdk/protocol"
)

// Reason says why a connection or datagram was refused: the reason of a
// REFUSED event (control.proto).
type Reason string

// The reasons, in the order the rules are checked.
const (
	Deny         Reason = "deny"           // the source is in a deny CIDR
	NotAllowed   Reason = "not-allowed"    // there is an allow list, and the source is in none of it
	MaxConns     Reason = "max-conns"      // as many connections are open as MaxConns
	MaxPerSource Reason = "max-per-source" // as many are open from this source as MaxPerSource
	Rate         Reason = "rate"           // the source's token bucket is empty
	ProxyHeader  Reason = "proxy-header"   // no valid PROXY header from a trusted proxy, or one from an untrusted peer
)

// Reasons lists every reason.
var Reasons = []Reason{Deny, NotAllowed, MaxConns, MaxPerSource, Rate, ProxyHeader}

// Rules are compiled rules. The zero value (and nil) allows everything.
type Rules struct {
	Allow []netip.Prefix
	Deny  []netip.Prefix
	// MaxConns and MaxPerSource: 0 is no limit.
	MaxConns     int
	MaxPerSource int
	// Rate is new connections (or datagrams) per second per source, Burst
	// the bucket's size; a zero Rate is no limit.
	Rate  rate.Limit
	Burst int
	// Proxy lists the trusted proxies' CIDRs (PROXY protocol).
	Proxy []netip.Prefix
}

// Compile checks p and compiles it; nil compiles to nil (no rules). The error
// names the offending value: an invalid or overlapping CIDR, a negative or
// non-finite rate, a rate with no burst.
func Compile(p *protocol.Rules) (*Rules, error) {
	if p == nil {
		return nil, nil
	}
	var r Rules
	var err error
	if r.Allow, err = ParsePrefixes("allow", p.GetAllow()); err != nil {
		return nil, err
	}
	if r.Deny, err = ParsePrefixes("deny", p.GetDeny()); err != nil {
		return nil, err
	}
	if r.Proxy, err = ParsePrefixes("proxy_protocol", p.GetProxyProtocol()); err != nil {
		return nil, err
	}
	if p.GetMaxConns() > math.MaxInt32 || p.GetMaxPerSource() > math.MaxInt32 {
		return nil, fmt.Errorf("connection limit too large")
	}
	r.MaxConns, r.MaxPerSource = int(p.GetMaxConns()), int(p.GetMaxPerSource())
	rt := p.GetRatePerSource()
	switch {
	case math.IsNaN(rt) || math.IsInf(rt, 0) || rt < 0:
		return nil, fmt.Errorf("rate_per_source %v: want a positive number per second, or 0 for none", rt)
	case rt > 0 && p.GetRateBurst() == 0:
		return nil, fmt.Errorf("rate_per_source %v with rate_burst 0: every connection would be refused", rt)
	case p.GetRateBurst() > math.MaxInt32:
		return nil, fmt.Errorf("rate_burst %d too large", p.GetRateBurst())
	}
	r.Rate, r.Burst = rate.Limit(rt), int(p.GetRateBurst())
	if r.Rate == 0 {
		r.Burst = 0
	}
	if r.IsZero() {
		return nil, nil
	}
	return &r, nil
}

// Proto is r as the wire carries it (nil for no rules).
func (r *Rules) Proto() *protocol.Rules {
	if r.IsZero() {
		return nil
	}
	str := func(ps []netip.Prefix) []string {
		out := make([]string, len(ps))
		for i, p := range ps {
			out[i] = p.String()
		}
		return out
	}
	return &protocol.Rules{
		Allow: str(r.Allow), Deny: str(r.Deny), MaxConns: uint32(r.MaxConns), MaxPerSource: uint32(r.MaxPerSource),
		RatePerSource: float64(r.Rate), RateBurst: uint32(r.Burst), ProxyProtocol: str(r.Proxy),
	}
}

// IsZero reports whether r allows everything.
func (r *Rules) IsZero() bool {
	return r == nil || len(r.Allow) == 0 && len(r.Deny) == 0 && r.MaxConns == 0 && r.MaxPerSource == 0 &&
		r.Rate == 0 && len(r.Proxy) == 0
}

// Counts reports whether r limits open connections, so that whoever enforces
// it must know when each closes.
func (r *Rules) Counts() bool { return r != nil && (r.MaxConns > 0 || r.MaxPerSource > 0) }

// ProxyProtocol reports whether r names trusted proxies.
func (r *Rules) ProxyProtocol() bool { return r != nil && len(r.Proxy) > 0 }

// Trusted reports whether ip is a trusted proxy, which must send a PROXY
// header.
func (r *Rules) Trusted(ip netip.Addr) bool { return r != nil && contains(r.Proxy, ip.Unmap()) }

// Check applies the allow and deny lists to ip: "" if allowed.
func (r *Rules) Check(ip netip.Addr) Reason {
	if r == nil {
		return ""
	}
	ip = ip.Unmap()
	if contains(r.Deny, ip) {
		return Deny
	}
	if len(r.Allow) > 0 && !contains(r.Allow, ip) {
		return NotAllowed
	}
	return ""
}

func contains(ps []netip.Prefix, ip netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// String is r in the flags' words, for logs.
func (r *Rules) String() string {
	if r.IsZero() {
		return "none"
	}
	var parts []string
	list := func(name string, ps []netip.Prefix) {
		if len(ps) > 0 {
			s := make([]string, len(ps))
			for i, p := range ps {
				s[i] = p.String()
			}
			parts = append(parts, name+"="+strings.Join(s, ","))
		}
	}
	list("allow", r.Allow)
	list("deny", r.Deny)
	if r.MaxConns > 0 {
		parts = append(parts, "max-conns="+strconv.Itoa(r.MaxConns))
	}
	if r.MaxPerSource > 0 {
		parts = append(parts, "max-per-source="+strconv.Itoa(r.MaxPerSource))
	}
	if r.Rate > 0 {
		parts = append(parts, fmt.Sprintf("rate-per-source=%g/s:%d", float64(r.Rate), r.Burst))
	}
	list("proxy-protocol", r.Proxy)
	return strings.Join(parts, " ")
}

// ParsePrefix parses one CIDR ("127.0.0.0/8", "2001:db8::/32") or a bare
// address, which stands for itself alone (/32, /128). A CIDR with bits set
// past its prefix length ("127.0.0.1/8") is refused: it usually means a
// mistyped address or length.
func ParsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR (want ADDRESS/BITS such as 127.0.0.0/8) or an IP address", s)
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR (want ADDRESS/BITS such as 127.0.0.0/8)", s)
	}
	if p.Addr().Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, fmt.Errorf("%q: an IPv4-mapped prefix shorter than /96", s)
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	if m := p.Masked(); m != p {
		return netip.Prefix{}, fmt.Errorf("%q has bits set past its /%d (did you mean %s?)", s, p.Bits(), m)
	}
	return p, nil
}

// ParsePrefixes parses a list of CIDRs (ParsePrefix) and refuses two that
// overlap, since one of them then says nothing or is a typo. what names the
// list in the error.
func ParsePrefixes(what string, list []string) ([]netip.Prefix, error) {
	if len(list) == 0 {
		return nil, nil
	}
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		p, err := ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		for _, q := range out {
			if q.Overlaps(p) {
				return nil, fmt.Errorf("%s: %s and %s overlap", what, q, p)
			}
		}
		out = append(out, p)
	}
	return out, nil
}

// SplitList splits a comma-separated list, dropping empty items.
func SplitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// ParseRate parses RATE[/s|/m][:BURST]: RATE new connections (or datagrams)
// per second ("/s", the default) or per minute ("/m"), a positive decimal
// number, and the token bucket's BURST, a positive integer, by default the
// rate per second rounded up (at least 1). "10", "10/s:20", "30/m".
func ParseRate(s string) (perSecond float64, burst uint32, err error) {
	bad := func(why string) error {
		return fmt.Errorf("rate %q: %s (want RATE[/s|/m][:BURST], such as 10/s:20 or 30/m)", s, why)
	}
	spec, burstStr, hasBurst := strings.Cut(strings.TrimSpace(s), ":")
	num, unit, hasUnit := strings.Cut(spec, "/")
	per := time.Second
	if hasUnit {
		switch unit {
		case "s":
		case "m":
			per = time.Minute
		default:
			return 0, 0, bad(fmt.Sprintf("unit %q is neither s nor m", unit))
		}
	}
	v, perr := strconv.ParseFloat(num, 64)
	if perr != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, 0, bad(fmt.Sprintf("%q is not a number", num))
	}
	if v <= 0 {
		return 0, 0, bad("the rate must be positive")
	}
	perSecond = v / per.Seconds()
	if perSecond > 1e9 {
		return 0, 0, bad("more than 10^9 per second")
	}
	if hasBurst {
		b, berr := strconv.ParseUint(burstStr, 10, 32)
		if berr != nil || b == 0 || b > math.MaxInt32 {
			return 0, 0, bad(fmt.Sprintf("burst %q is not a whole number from 1 to %d", burstStr, math.MaxInt32))
		}
		return perSecond, uint32(b), nil
	}
	return perSecond, uint32(max(1, math.Ceil(perSecond))), nil
}

// FormatRate is the inverse of ParseRate, per second.
func FormatRate(perSecond float64, burst uint32) string {
	return strconv.FormatFloat(perSecond, 'g', -1, 64) + "/s:" + strconv.FormatUint(uint64(burst), 10)
}

// Merge returns the rules of a plugin whose own rules are own and for which
// the rules for every plugin ("*") are all: each rule own sets replaces all's,
// the others are all's. Either may be nil.
func Merge(all, own *protocol.Rules) *protocol.Rules {
	if all == nil && own == nil {
		return nil
	}
	out := &protocol.Rules{}
	for _, r := range []*protocol.Rules{all, own} {
		if r == nil {
			continue
		}
		if len(r.Allow) > 0 {
			out.Allow = slices.Clone(r.Allow)
		}
		if len(r.Deny) > 0 {
			out.Deny = slices.Clone(r.Deny)
		}
		if r.MaxConns > 0 {
			out.MaxConns = r.MaxConns
		}
		if r.MaxPerSource > 0 {
			out.MaxPerSource = r.MaxPerSource
		}
		if r.RatePerSource > 0 {
			out.RatePerSource, out.RateBurst = r.RatePerSource, r.RateBurst
		}
		if len(r.ProxyProtocol) > 0 {
			out.ProxyProtocol = slices.Clone(r.ProxyProtocol)
		}
	}
	return out
}

// Source is the key a source is counted by: the address itself for IPv4,
// its /64 for IPv6 (an IPv4-mapped IPv6 address is IPv4).
func Source(ip netip.Addr) netip.Addr {
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.Addr()
	}
	return ip
}

// ErrRefused is wrapped by the errors of connections the rules refused.
var ErrRefused = errors.New("refused by the rules")
