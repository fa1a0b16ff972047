package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/sockplay/sockplay/sdk"
)

// client is `sockplay-udpecho send [ADDR] [--timeout D]`: each stdin line goes
// out as one datagram and the reply is printed; a line with no reply within
// the timeout is reported, and the exit status is 1 if any was lost. As in the
// tutorial, an empty line or "quit" ends it.
func client(ctx context.Context, args []string, stdio sdk.Stdio) error {
	if len(args) == 0 || args[0] != "send" {
		return sdk.ErrUsage
	}
	addr := Plugin().DefaultAddr
	timeout := 2 * time.Second
	rest := args[1:]
	for len(rest) > 0 {
		switch {
		case rest[0] == "--timeout" && len(rest) > 1:
			d, err := time.ParseDuration(rest[1])
			if err != nil || d <= 0 {
				return fmt.Errorf("%w: --timeout %q: want a duration such as 2s", sdk.ErrUsage, rest[1])
			}
			timeout, rest = d, rest[2:]
		case addr == Plugin().DefaultAddr && rest[0] != "--timeout":
			addr, rest = rest[0], rest[1:]
		default:
			return sdk.ErrUsage
		}
	}
	c, err := sdk.Dial(ctx, "udp", addr)
	if err != nil {
		return err
	}
	defer c.Close()

	lost := 0
	buf := make([]byte, 65536)
	sc := bufio.NewScanner(stdio.In)
	sc.Buffer(make([]byte, 0, 64<<10), sdk.MaxDatagram)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line == "quit" {
			break
		}
		if _, err := c.Write([]byte(line)); err != nil {
			return err
		}
		_ = c.SetReadDeadline(time.Now().Add(timeout))
		n, err := c.Read(buf)
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			lost++
			fmt.Fprintf(stdio.Err, "no reply from %s within %s\n", addr, timeout)
			continue
		case err != nil:
			// ECONNREFUSED: an ICMP port unreachable came back.
			lost++
			fmt.Fprintf(stdio.Err, "no reply from %s: %v\n", addr, err)
			continue
		}
		fmt.Fprintf(stdio.Out, "%s\n", buf[:n])
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if lost > 0 {
		return fmt.Errorf("%d of the datagrams got no reply", lost)
	}
	return nil
}
