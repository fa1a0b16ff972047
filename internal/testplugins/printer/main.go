// Command sockplay-printer is a test plugin that does what a student does
// when debugging: it prints to stdout while the host configures it (its TCP
// handler constructor), and its handler prints to stdout and writes a plain
// line to stderr. Each connection gets "ok" and is closed. With
// SOCKPLAY_PRINTER_EARLY=1 in its environment it also prints before sdk.Main,
// which the SDK does not guard: the host refuses it as not a plugin.
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
	if os.Getenv("SOCKPLAY_PRINTER_EARLY") == "1" {
		fmt.Println("printer: printed before sdk.Main")
	}
	sdk.Main(sdk.Plugin{
		Name:        "printer",
		Version:     "0.0.1",
		Summary:     "test plugin: prints to stdout and stderr",
		DefaultAddr: "127.0.0.1:0",
		TCP: func(sdk.Config) (sdk.Handler, error) {
			fmt.Println("printer: printed while configuring")
			return sdk.HandlerFunc(func(_ context.Context, c net.Conn) {
				fmt.Println("printer: printed by the handler")
				fmt.Fprintln(os.Stderr, "printer: a plain stderr line")
				_, _ = io.WriteString(c, "ok\n")
			}), nil
		},
	})
}
