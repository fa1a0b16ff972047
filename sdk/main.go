package sdk

import (
	"fmt"
	"os"

	"github.com/sockplay/sockplay/sdk/protocol"
)

// Main runs the plugin and exits. Started by the sockplay host (which sets
// go-plugin's magic cookie) it serves the host; run by hand it runs the
// plugin's client command line.
func Main(p Plugin) {
	if err := p.Validate(); err != nil {
		fmt.Fprintf(os.Stderr, "sockplay-%s: %v\n", p.Name, err)
		os.Exit(2)
	}
	if os.Getenv(protocol.Handshake.MagicCookieKey) == protocol.Handshake.MagicCookieValue {
		os.Exit(servePlugin(&p))
	}
	clientMain(&p)
}
