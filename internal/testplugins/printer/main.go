// Command sockplay-printer is a test plugin that does what a student does
// when debugging: it prints to stdout before sdk.Main, and its handler
// prints to stdout and writes a plain line to stderr. Each connection gets
// "ok" and is closed.
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"

	"github.com/sockplay/sockplay/sdk"
)

func main() {
	fmt.Println("printer: printed before sdk.Main")
	sdk.Main(sdk.Plugin{
		Name:        "printer",
		Version:     "0.0.1",
		Summary:     "test plugin: prints to stdout and stderr",
		DefaultAddr: "127.0.0.1:0",
		TCP: func(sdk.Config) (sdk.Handler, error) {
			return sdk.HandlerFunc(func(_ context.Context, c net.Conn) {
				fmt.Println("printer: printed by the handler")
				fmt.Fprintln(os.Stderr, "printer: a plain stderr line")
				_, _ = io.WriteString(c, "ok\n")
			}), nil
		},
	})
}
