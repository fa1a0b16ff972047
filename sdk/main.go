package sdk

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/sockplay/sockplay/sdk/client"
	"github.com/sockplay/sockplay/sdk/protocol"
)

// Main runs the plugin and exits. Started by the sockplay host (which sets
// go-plugin's magic cookie) it serves the host; run by hand it runs the
// plugin's client command line (package sdk/client) with a context that
// SIGINT and SIGTERM cancel. Served, Main keeps standard output clear for
// go-plugin's handshake line from its start until the handshake is written:
// what is printed then goes to the host's log. What the program printed
// before Main is not guarded (see the package doc).
func Main(p Plugin) {
	if err := p.Validate(); err != nil {
		fmt.Fprintf(os.Stderr, "sockplay-%s: %v\n", p.Name, err)
		os.Exit(2)
	}
	if os.Getenv(protocol.Handshake.MagicCookieKey) == protocol.Handshake.MagicCookieValue {
		guardStdout()
		os.Exit(servePlugin(&p))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := client.Run(ctx, p.Client(), os.Args[1:], client.Stdio{In: os.Stdin, Out: os.Stdout, Err: os.Stderr})
	stop()
	os.Exit(code)
}
