// Command sockplay-printer is a test plugin that does what a student does
// when debugging: it prints to stdout while the host configures it (its TCP
// handler constructor), and its handler prints to stdout and writes a plain
// line to stderr. Each connection gets "ok"; then what the client sends (up
// to 1 KiB, until it half-closes) is relayed as it is to every place a
// plugin writes: stdout, stderr, a log record's message and one of its
// fields. Then the connection is closed. With SOCKPLAY_PRINTER_EARLY=1 in
// its environment it also prints before sdk.Main, which the SDK does not
// guard: the host refuses it as not a plugin.
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"time"

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
			return sdk.HandlerFunc(func(ctx context.Context, c net.Conn) {
				fmt.Println("printer: printed by the handler")
				fmt.Fprintln(os.Stderr, "printer: a plain stderr line")
				_, _ = io.WriteString(c, "ok\n")
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				b, _ := io.ReadAll(io.LimitReader(c, 1024))
				if len(b) == 0 {
					return
				}
				fmt.Printf("stdout: %s\n", b)
				fmt.Fprintf(os.Stderr, "stderr: %s\n", b)
				sdk.Logger(ctx).Warn("message: "+string(b), "field", string(b))
			}), nil
		},
	})
}
