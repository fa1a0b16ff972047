package main

import (
	"context"
	"errors"
	"io"
	"net"
	"time"

	"github.com/sockplay/sockplay/sdk"
	"github.com/sockplay/sockplay/sdk/client"
	"github.com/sockplay/sockplay/sdk/escape"
)

// Version is the hello plugin's own version.
const Version = "1.0.0"

// DefaultGreeting is the tutorial's greeting.
const DefaultGreeting = "成功连接到服务器 socket message"

// Plugin describes the hello plugin.
func Plugin() sdk.Plugin {
	return sdk.Plugin{
		Name:        "hello",
		Version:     Version,
		Summary:     "sends one greeting to each client and closes",
		DefaultAddr: "127.0.0.1:12345",
		Options: []sdk.Option{
			{Name: "greeting", Default: DefaultGreeting, Help: "the text sent to each client"},
		},
		TCP: func(cfg sdk.Config) (sdk.Handler, error) {
			g := []byte(cfg.String("greeting"))
			return sdk.HandlerFunc(func(_ context.Context, c net.Conn) {
				_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
				_, _ = c.Write(g)
			}), nil
		},
		Commands: []client.Command{{
			Name: "connect", Args: "[ADDR]", MaxArgs: 1,
			Summary: "print the server's greeting",
			Help: `Connects, prints what the server sends until it closes (at most 1 MiB,
control characters escaped), like the tutorial's client. ADDR defaults to
127.0.0.1:12345.`,
			Example: "sockplay-hello connect\nsockplay-hello connect 127.0.0.1:12345",
			Run:     connect,
		}},
	}
}

// connect is `sockplay-hello connect [ADDR]`: connect, print what the
// server sends until it closes.
func connect(ctx context.Context, args []string, stdio client.Stdio) error {
	addr := Plugin().DefaultAddr
	if len(args) == 1 {
		addr = args[0]
	}
	c, err := client.Dial(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second)) // the greeting comes at once
	out := escape.NewWriter(stdio.Out)
	if _, err := io.Copy(out, io.LimitReader(c, 1<<20)); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	out.Close()
	_, err = io.WriteString(stdio.Out, "\n")
	return err
}
