package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/sockplay/sockplay/sdk"
)

// client is `sockplay-echo connect [ADDR]`: like the tutorial's threaded
// client, one goroutine sends stdin's lines while another prints what comes
// back. At the end of stdin it half-closes the connection and prints the
// replies still in flight.
func client(ctx context.Context, args []string, stdio sdk.Stdio) error {
	if len(args) == 0 || args[0] != "connect" || len(args) > 2 {
		return sdk.ErrUsage
	}
	addr := Plugin().DefaultAddr
	if len(args) == 2 {
		addr = args[1]
	}
	c, err := sdk.Dial(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()

	sent := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdio.In)
		for sc.Scan() {
			if _, err := fmt.Fprintf(c, "%s\n", sc.Bytes()); err != nil {
				sent <- err
				return
			}
		}
		if err := sc.Err(); err != nil {
			sent <- err
			return
		}
		sent <- c.(*net.TCPConn).CloseWrite()
	}()
	_, rerr := io.Copy(stdio.Out, c)
	if ctx.Err() != nil {
		return nil
	}
	select {
	case err := <-sent:
		if err != nil && !errors.Is(err, net.ErrClosed) {
			return err
		}
	case <-time.After(100 * time.Millisecond):
		// The server closed first (it got "quit"); stdin may still be open.
	}
	return rerr
}
