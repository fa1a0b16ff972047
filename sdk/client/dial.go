package client

import (
	"context"
	"net"
	"time"
)

// DialTimeout bounds a client command's connection attempt.
const DialTimeout = 5 * time.Second

// Dial connects a plugin's client command to addr ("tcp" or "udp"). The
// attempt gives up after DialTimeout, and the connection is closed when ctx
// is cancelled, so that Ctrl-C (which cancels the context sdk.Main gives Run, and so a Command's Run)
// ends a read that waits for the server. The connection keeps its concrete
// type (*net.TCPConn, *net.UDPConn).
func Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: DialTimeout}
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	context.AfterFunc(ctx, func() { c.Close() })
	return c, nil
}
