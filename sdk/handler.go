package sdk

import (
	"context"
	"net"
)

// Handler serves one TCP connection. The SDK closes the connection when
// ServeConn returns. ctx is cancelled when the host asks the plugin to drain;
// a handler that blocks in a read should watch it or expect the connection to
// be closed under it when the drain timeout ends.
type Handler interface {
	ServeConn(ctx context.Context, conn net.Conn)
}

// HandlerFunc adapts a function to a Handler.
type HandlerFunc func(ctx context.Context, conn net.Conn)

// ServeConn calls f(ctx, conn).
func (f HandlerFunc) ServeConn(ctx context.Context, conn net.Conn) { f(ctx, conn) }

// PacketHandler serves a UDP socket: it reads datagrams with their senders and
// writes replies, until ctx is cancelled or the socket is closed.
type PacketHandler interface {
	ServePackets(ctx context.Context, pc net.PacketConn)
}

// PacketHandlerFunc adapts a function to a PacketHandler.
type PacketHandlerFunc func(ctx context.Context, pc net.PacketConn)

// ServePackets calls f(ctx, pc).
func (f PacketHandlerFunc) ServePackets(ctx context.Context, pc net.PacketConn) { f(ctx, pc) }

var (
	_ Handler       = HandlerFunc(nil)
	_ PacketHandler = PacketHandlerFunc(nil)
)
