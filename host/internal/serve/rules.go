package serve

import (
	"fmt"
	"strings"

	"github.com/sockplay/sockplay/host/internal/config"
	"github.com/sockplay/sockplay/sdk/protocol"
	"github.com/sockplay/sockplay/sdk/protocol/rules"
)

// placement says who enforces a plugin's rules.
type placement struct {
	host     *rules.Rules    // the host, as its listener accepts
	plugin   *protocol.Rules // the plugin, where it accepts or receives
	listener bool            // TCP: the plugin accepts on the shared listener
	fellBack bool            // --handoff listener asked, conn used so the host can enforce
}

// place decides who enforces the rules r of plugin name, described by d,
// with the handoff mode asked for (listener: the plugin accepts). The rules
// apply where connections are accepted:
//
//   - UDP: the plugin, per datagram (the host never sees one); max-conns and
//     max-per-source make no sense there, and a plugin without feature
//     "rules" cannot be given any rule.
//   - PROXY protocol: the plugin reads the header, since the host never reads
//     a byte of a connection: reading it would put the host on the data path
//     with a per-connection read and a timeout in its accept loop, and the
//     client address would then have to travel with the descriptor. So the
//     host hands such a plugin every connection (or its listener) and the
//     SDK reads the header and applies all the rules to the client it names.
//     A plugin without feature "rules" cannot be given --proxy-protocol.
//   - Otherwise the rules apply where the plugin's connections are accepted:
//     in the host (conn handoff), or in the plugin when it accepts on the
//     shared listener. A plugin without feature "rules" gets conn handoff,
//     so that the host can enforce them.
func place(name string, d *protocol.Description, listenerAsked bool, r *rules.Rules) (placement, error) {
	hasRules := protocol.HasFeature(d, protocol.FeatureRules)
	canListen := listenerAsked && protocol.HasFeature(d, protocol.FeatureListener)
	if isUDP(d) {
		switch {
		case r.IsZero():
			return placement{}, nil
		case r.MaxConns > 0:
			return placement{}, fmt.Errorf("max-conns for %s: a UDP plugin has no connections to count (for UDP, allow, deny and rate-per-source apply per datagram)", name)
		case r.MaxPerSource > 0:
			return placement{}, fmt.Errorf("max-per-source for %s: a UDP plugin has no connections to count (for UDP, allow, deny and rate-per-source apply per datagram)", name)
		case r.ProxyProtocol():
			return placement{}, fmt.Errorf("proxy-protocol for %s: the PROXY protocol is read on TCP connections only, and %s is a UDP plugin", name, name)
		case !hasRules:
			return placement{}, fmt.Errorf("rules for %s: only the plugin sees its datagrams, and %s %s does not enforce rules (it lacks feature %q), so they cannot be enforced: leave it out (--enable) or give it no rules", name, name, d.GetVersion(), protocol.FeatureRules)
		}
		return placement{plugin: r.Proto()}, nil
	}
	switch {
	case r.IsZero():
		return placement{listener: canListen}, nil
	case r.ProxyProtocol():
		if !hasRules {
			return placement{}, fmt.Errorf("proxy-protocol for %s: the plugin must read the PROXY header (the host reads no connection's bytes), and %s %s lacks feature %q", name, name, d.GetVersion(), protocol.FeatureRules)
		}
		return placement{plugin: r.Proto(), listener: canListen}, nil
	case canListen && hasRules:
		return placement{plugin: r.Proto(), listener: true}, nil
	}
	return placement{host: r, fellBack: canListen}, nil
}

func isUDP(d *protocol.Description) bool {
	return d.GetTransport() == protocol.Transport_TRANSPORT_UDP
}

// checkRuleNames refuses rules for a plugin that is not enabled, naming
// where they were given.
func checkRuleNames(cfg config.Config, enabled func(string) bool) error {
	for name := range cfg.Rules {
		if name != config.AllPlugins && !enabled(name) {
			return fmt.Errorf("%s: no plugin %q is enabled", originOf(cfg, name), name)
		}
	}
	return nil
}

func originOf(cfg config.Config, name string) string {
	if o := cfg.Origin[name]; o != "" {
		return o
	}
	return "rules for " + name
}

// fileOrigin is where plugin name's block in the config file is, when it
// came from one, else flag.
func fileOrigin(cfg config.Config, name, flag string) string {
	if o := cfg.Origin[name]; o != "" && !strings.HasPrefix(o, "--") {
		return o
	}
	return flag
}
