// Command sockplay-whoami is a test plugin that tells each client who it
// is: it writes "REMOTE LOCAL ENV\n" (the connection's RemoteAddr, its
// LocalAddr, and whether the plugin's environment holds any of systemd's
// LISTEN_* or NOTIFY_SOCKET variables: "clean" or the first one found),
// then echoes lines until the client closes.
package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/sockplay/sockplay/sdk"
)

func main() {
	sdk.Main(sdk.Plugin{
		Name:        "whoami",
		Version:     "0.0.1",
		Summary:     "test plugin: tells each client its address, then echoes lines",
		DefaultAddr: "127.0.0.1:0",
		TCP:         func(sdk.Config) (sdk.Handler, error) { return sdk.HandlerFunc(serve), nil },
	})
}

func serve(ctx context.Context, c net.Conn) {
	fmt.Fprintf(c, "%s %s %s\n", c.RemoteAddr(), c.LocalAddr(), systemdEnv())
	sc := bufio.NewScanner(c)
	for sc.Scan() && ctx.Err() == nil {
		fmt.Fprintln(c, sc.Text())
	}
}

func systemdEnv() string {
	for _, kv := range os.Environ() {
		for _, p := range []string{"LISTEN_PID=", "LISTEN_FDS=", "LISTEN_FDNAMES=", "NOTIFY_SOCKET=", "WATCHDOG_USEC=", "WATCHDOG_PID="} {
			if strings.HasPrefix(kv, p) {
				return kv
			}
		}
	}
	return "clean"
}
