package main

import (
	"bytes"
	"context"
	"net"

	"github.com/sockplay/sockplay/sdk"
)

// Version is the echo plugin's own version.
const Version = "1.0.0"

// Plugin describes the echo plugin.
func Plugin() sdk.Plugin {
	return sdk.Plugin{
		Name:        "echo",
		Version:     Version,
		Summary:     "multi-client echo: every message comes back unchanged; quit or EOF ends the connection",
		Transport:   sdk.TCP,
		DefaultAddr: "127.0.0.1:12348",
		TCP:         func(sdk.Config) (sdk.Handler, error) { return sdk.HandlerFunc(serve), nil },
		Usage:       "connect [ADDR]   send stdin lines, print the replies as they come (default 127.0.0.1:12348)",
		Client:      client,
	}
}

// bufSize is the read size: large enough that a bulk transfer moves in few
// system calls, as io.Copy would.
const bufSize = 32 << 10

// serve echoes every chunk it reads. A chunk that is exactly "quit" (with or
// without a line end) closes the connection without being echoed, as the
// tutorial's server does; so does EOF.
func serve(_ context.Context, c net.Conn) {
	buf := make([]byte, bufSize)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if isQuit(buf[:n]) {
				return
			}
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func isQuit(b []byte) bool {
	return len(b) <= 6 && bytes.Equal(bytes.TrimRight(b, "\r\n"), []byte("quit"))
}
