// Command sockplay-panicky is a test plugin: a line echo that panics in the
// handler on the line "panic", and exits the whole process on "exit".
package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"

	"github.com/sockplay/sockplay/sdk"
)

func main() {
	sdk.Main(sdk.Plugin{
		Name:        "panicky",
		Version:     "0.0.1",
		Summary:     "test plugin: line echo that panics on 'panic'",
		Transport:   sdk.TCP,
		DefaultAddr: "127.0.0.1:0",
		TCP: func(sdk.Config) (sdk.Handler, error) {
			return sdk.HandlerFunc(func(_ context.Context, c net.Conn) {
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					switch sc.Text() {
					case "panic":
						panic("panicky: asked to panic")
					case "exit":
						fmt.Fprintln(os.Stderr, "panicky: asked to exit")
						os.Exit(7)
					}
					fmt.Fprintf(c, "%s\n", sc.Text())
				}
			}), nil
		},
	})
}
