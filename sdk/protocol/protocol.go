// Package protocol is the contract between the sockplay host and its plugins:
// the gRPC control service (control.proto and its generated code), the
// protocol version both sides negotiate through go-plugin, and the handshake
// constants. SPEC.md in this directory is the whole contract, written for an
// implementer in any language; sub-packages hold its other parts: fdpass (the
// descriptor wire) and plog (the log format).
//
// The version is go-plugin's VersionedPlugins key. Bump it when a change to the
// control service or to the descriptor handoff wire would break an older host or
// plugin; a host and a plugin with no version in common refuse each other with
// a message that names both.
package protocol

import (
	"context"
	"slices"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// Version is the protocol version this build of the host and the SDK speak.
const Version = 1

// PluginKey is the name of the one plugin each sockplay binary serves in its
// go-plugin PluginSet.
const PluginKey = "control"

// Handshake is the go-plugin handshake. The magic cookie tells a plugin binary
// that it was started by the host, not by a person; a binary run by hand runs
// its client command line instead.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  Version,
	MagicCookieKey:   "SOCKPLAY_PLUGIN_MAGIC_COOKIE",
	MagicCookieValue: "d3b8a0f4-sockplay-plugin-c0ffee",
}

// HandoffFDEnv names the environment variable that tells a plugin which file
// descriptor is its end of the handoff socket (a SOCK_SEQPACKET Unix socket the
// host passes through exec.Cmd.ExtraFiles).
const HandoffFDEnv = "SOCKPLAY_HANDOFF_FD"

// GRPCPlugin adapts the control service to go-plugin. The plugin side sets Impl;
// the host side leaves it nil and gets a ControlClient from Dispense.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl ControlServer
}

var _ plugin.GRPCPlugin = (*GRPCPlugin)(nil)

// GRPCServer registers the control service.
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	RegisterControlServer(s, p.Impl)
	return nil
}

// GRPCClient returns a ControlClient.
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return NewControlClient(c), nil
}

// PluginSet returns the versioned plugin sets for go-plugin with impl serving
// the control service (nil on the host side).
func PluginSet(impl ControlServer) map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{
		Version: {PluginKey: &GRPCPlugin{Impl: impl}},
	}
}

// LogLevelEnv carries the host's log level (trace, debug, info, warn, error)
// to its plugins.
const LogLevelEnv = "SOCKPLAY_LOG_LEVEL"

// Features a plugin may list in Description.features: the optional parts of
// the contract it implements (SPEC.md, "Features").
const (
	// FeatureEvents: the plugin serves the Events stream.
	FeatureEvents = "events"
	// FeatureTrace: the plugin honours ConfigureRequest.trace_bytes.
	FeatureTrace = "trace"
	// FeatureRules: the plugin enforces ConfigureRequest.rules and serves
	// SetRules.
	FeatureRules = "rules"
	// FeatureListener: the plugin takes a listening TCP socket (descriptor
	// kind 'L') and accepts on it itself.
	FeatureListener = "listener"
	// FeatureHandoffAck: the plugin answers each batch of connections with
	// the ids it took and those it could not (sdk/protocol/fdpass).
	FeatureHandoffAck = "handoff-ack"
)

// HasFeature reports whether d lists feature f.
func HasFeature(d *Description, f string) bool {
	return slices.Contains(d.GetFeatures(), f)
}
