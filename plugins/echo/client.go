package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/sockplay/sockplay/sdk/client"
	"github.com/sockplay/sockplay/sdk/escape"
)

// connectCommand is `sockplay-echo connect [ADDR]`.
func connectCommand() client.Command {
	return client.Command{
		Name: "connect", Args: "[ADDR]", MaxArgs: 1,
		Summary: "send stdin lines, print the replies as they come",
		Help: `Like the tutorial's threaded client, one goroutine sends stdin's lines
while another prints what comes back. At the end of stdin the connection is
half-closed and the replies still in flight are printed. ADDR defaults to
127.0.0.1:12348. A line "quit" makes the server close the connection.`,
		Example: `printf 'hello\nworld\n' | sockplay-echo connect
sockplay-echo connect 127.0.0.1:12348`,
		Run: connect,
	}
}

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
	out := escape.NewWriter(stdio.Out)
	_, rerr := io.Copy(out, c)
	out.Close()
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
