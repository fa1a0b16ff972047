package config

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/sockplay/sockplay/sdk/protocol"
	"github.com/sockplay/sockplay/sdk/protocol/rules"
)

// AllPlugins is the plugin name that gives a rule to every plugin.
const AllPlugins = "*"

// RuleFlags are the raw values of the rule flags, each NAME=VALUE with NAME a
// plugin or "*" (every plugin; a plugin's own value for the same rule
// replaces it).
type RuleFlags struct {
	Allow         []string // NAME=CIDR[,CIDR...]
	Deny          []string // NAME=CIDR[,CIDR...]
	MaxConns      []string // NAME=N
	MaxPerSource  []string // NAME=N
	RatePerSource []string // NAME=RATE[/s|/m][:BURST]
	ProxyProtocol []string // NAME=CIDR[,CIDR...]
}

// ParseRules parses the rule flags into rules by plugin name, and where each
// plugin's were first given (for errors that name a plugin later). A list
// flag given again for the same plugin adds to its list; a number given twice
// is an error. Each error names the flag and the value.
func ParseRules(f RuleFlags) (map[string]*protocol.Rules, map[string]string, error) {
	out := map[string]*protocol.Rules{}
	origin := map[string]string{}
	get := func(flag, v string) (*protocol.Rules, string, string, error) {
		name, val, ok := strings.Cut(v, "=")
		if !ok || !validName(name) {
			return nil, "", "", fmt.Errorf("--%s %q: want NAME=VALUE, NAME a plugin or *", flag, v)
		}
		if out[name] == nil {
			out[name] = &protocol.Rules{}
			origin[name] = "--" + flag + " " + v
		}
		return out[name], name, val, nil
	}
	lists := []struct {
		flag   string
		values []string
		field  func(*protocol.Rules) *[]string
	}{
		{"allow", f.Allow, func(r *protocol.Rules) *[]string { return &r.Allow }},
		{"deny", f.Deny, func(r *protocol.Rules) *[]string { return &r.Deny }},
		{"proxy-protocol", f.ProxyProtocol, func(r *protocol.Rules) *[]string { return &r.ProxyProtocol }},
	}
	for _, l := range lists {
		for _, v := range l.values {
			r, _, val, err := get(l.flag, v)
			if err != nil {
				return nil, nil, err
			}
			items := rules.SplitList(val)
			if len(items) == 0 {
				return nil, nil, fmt.Errorf("--%s %s: no CIDR given", l.flag, shown(v))
			}
			list := l.field(r)
			all := append(append([]string{}, *list...), items...)
			ps, err := rules.ParsePrefixes(l.flag, all)
			if err != nil {
				return nil, nil, fmt.Errorf("--%s %s: %w", l.flag, shown(v), unprefix(err, l.flag))
			}
			*list = nil
			for _, p := range ps {
				*list = append(*list, p.String())
			}
		}
	}
	counts := []struct {
		flag   string
		values []string
		field  func(*protocol.Rules) *uint32
	}{
		{"max-conns", f.MaxConns, func(r *protocol.Rules) *uint32 { return &r.MaxConns }},
		{"max-per-source", f.MaxPerSource, func(r *protocol.Rules) *uint32 { return &r.MaxPerSource }},
	}
	for _, c := range counts {
		for _, v := range c.values {
			r, name, val, err := get(c.flag, v)
			if err != nil {
				return nil, nil, err
			}
			n, err := ParseCount(val)
			if err != nil {
				return nil, nil, fmt.Errorf("--%s %s: %w", c.flag, shown(v), err)
			}
			if p := c.field(r); *p != 0 {
				return nil, nil, fmt.Errorf("--%s %s: %s is given twice", c.flag, shown(v), name)
			} else {
				*p = n
			}
		}
	}
	for _, v := range f.RatePerSource {
		r, name, val, err := get("rate-per-source", v)
		if err != nil {
			return nil, nil, err
		}
		if r.RatePerSource != 0 {
			return nil, nil, fmt.Errorf("--rate-per-source %s: %s is given twice", shown(v), name)
		}
		if r.RatePerSource, r.RateBurst, err = rules.ParseRate(val); err != nil {
			return nil, nil, fmt.Errorf("--rate-per-source %s: %w", shown(v), err)
		}
	}
	return out, origin, nil
}

// validName reports whether name can be a plugin's (the catalog's
// sockplay-NAME: letters, digits, "-", "_", ".") or is "*".
func validName(name string) bool {
	if name == AllPlugins {
		return true
	}
	if name == "" {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// shown is a flag value as an error shows it: as given, or quoted when it
// holds spaces or control characters, so that the error stays one line.
func shown(v string) string {
	for _, r := range v {
		if r <= ' ' || r == 0x7f || !strconv.IsPrint(r) {
			return strconv.Quote(v)
		}
	}
	return v
}

// unprefix drops the list name rules.ParsePrefixes puts first, which the
// flag already says.
func unprefix(err error, what string) error {
	msg := strings.TrimPrefix(err.Error(), what+": ")
	return fmt.Errorf("%s", msg)
}

// ParseCount parses a connection limit: a whole number from 1 to 1,000,000.
func ParseCount(s string) (uint32, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 32)
	if err != nil || n < 1 || n > 1_000_000 {
		return 0, fmt.Errorf("%q is not a whole number from 1 to 1000000", s)
	}
	return uint32(n), nil
}

// RulesFor returns the rules of plugin name: its own, over those for every
// plugin ("*"); nil for none. For a UDP plugin (udp), the rules for every
// plugin bring only what applies to datagrams (allow, deny and
// rate-per-source): their connection limits and PROXY protocol are for the
// TCP plugins, where "*" means every plugin they make sense for. A UDP
// plugin's own connection limits stay, and are an error where checked.
func (c *Config) RulesFor(name string, udp bool) *protocol.Rules {
	all := c.Rules[AllPlugins]
	if udp && all != nil {
		all = &protocol.Rules{Allow: all.Allow, Deny: all.Deny, RatePerSource: all.RatePerSource, RateBurst: all.RateBurst}
	}
	r := rules.Merge(all, c.Rules[name])
	if r != nil && proto0(r) {
		return nil
	}
	return r
}

func proto0(r *protocol.Rules) bool {
	return len(r.Allow) == 0 && len(r.Deny) == 0 && r.MaxConns == 0 && r.MaxPerSource == 0 &&
		r.RatePerSource == 0 && len(r.ProxyProtocol) == 0
}

// MergeRules lays the rules of over on those of base, plugin by plugin and
// rule by rule: how flags override a config file.
func MergeRules(base, over map[string]*protocol.Rules) map[string]*protocol.Rules {
	out := map[string]*protocol.Rules{}
	for name, r := range base {
		out[name] = r
	}
	for name, r := range over {
		out[name] = rules.Merge(out[name], r)
	}
	return out
}
