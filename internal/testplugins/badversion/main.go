// Command sockplay-badversion is a test plugin that speaks protocol version 99
// with the right magic cookie, so the host must refuse it by version.
package main

import (
	"github.com/hashicorp/go-plugin"

	"github.com/sockplay/sockplay/sdk/protocol"
)

func main() {
	hs := protocol.Handshake
	hs.ProtocolVersion = 99
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: hs,
		VersionedPlugins: map[int]plugin.PluginSet{
			99: {protocol.PluginKey: &protocol.GRPCPlugin{Impl: &protocol.UnimplementedControlServer{}}},
		},
		GRPCServer: plugin.DefaultGRPCServer,
	})
}
