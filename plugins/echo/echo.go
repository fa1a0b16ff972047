package main

import (
	"bytes"
	"context"
	"net"
	"sync"
	"syscall"

	"github.com/sockplay/sockplay/sdk"
	"github.com/sockplay/sockplay/sdk/client"
)

// Version is the echo plugin's own version.
const Version = "1.0.0"

// name is the plugin's name. The bench's scaling measurement links copies
// under other names (go build -ldflags "-X main.name=echo07" -o
// sockplay-echo07), since a binary must be named after its plugin.
var name = "echo"

// Plugin describes the echo plugin.
func Plugin() sdk.Plugin {
	return sdk.Plugin{
		Name:        name,
		Version:     Version,
		Summary:     "multi-client echo: every message comes back unchanged; quit or EOF ends the connection",
		DefaultAddr: "127.0.0.1:12348",
		TCP:         func(sdk.Config) (sdk.Handler, error) { return sdk.HandlerFunc(serve), nil },
		Commands:    []client.Command{connectCommand()},
	}
}

// bufSize is the bulk read size where the bytes go through the process: large
// enough that a bulk transfer moves in few system calls, as io.Copy would. A
// connection starts with a small buffer and takes a bulk one from bufPool
// only when a read fills the small one: a fresh 32 KiB per connection made
// short connections allocation-bound (about half the plugin's CPU went to
// zeroing and collecting them) and idle ones heavy.
const (
	bufSize   = 32 << 10
	smallSize = 2 << 10
)

// rawConn is a connection that gives its socket for splice(2).
type rawConn interface {
	net.Conn
	SyscallConn() (syscall.RawConn, error)
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// serve echoes every chunk it reads. A chunk that is exactly "quit" (with or
// without a line end) closes the connection without being echoed, as the
// tutorial's server does; so does EOF.
//
// Once a read fills the small buffer the connection is a bulk transfer: on
// Linux, when c gives its socket (the TCP connection itself, or the SDK's
// rule wrappers once no bytes are held back), the rest goes back with
// splice(2) through a pipe (spliceEcho), as io.Copy between two TCP
// connections does, so the bytes never enter the process; elsewhere, or
// when c hides its socket (trace mode sees every byte), through a pooled
// 32 KiB buffer.
func serve(_ context.Context, c net.Conn) {
	buf := make([]byte, smallSize)
	for {
		n, err := c.Read(buf)
		bulk := n == len(buf) && len(buf) < bufSize
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
		if bulk {
			if sc, ok := c.(rawConn); ok && spliceEcho(sc) {
				return
			}
			big := bufPool.Get().(*[]byte)
			defer bufPool.Put(big)
			buf = *big
		}
	}
}

func isQuit(b []byte) bool {
	return len(b) <= quitMax && bytes.Equal(bytes.TrimRight(b, "\r\n"), []byte("quit"))
}

// quitMax is the longest chunk that can be a quit: "quit\r\n".
const quitMax = 6
