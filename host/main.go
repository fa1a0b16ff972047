// Command sockplay is the host of the sockplay socket playground: it owns
// every listener, runs each protocol plugin (sockplay-NAME) as its own process
// under supervision, and hands it the connections it accepts. The command
// line is in host/internal/cli; `sockplay --help` describes it.
package main

import (
	"context"
	"os"

	"github.com/sockplay/sockplay/host/internal/cli"
)

func main() {
	os.Exit(cli.Main(context.Background(), os.Args[1:], cli.Streams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}))
}
