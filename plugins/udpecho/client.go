package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/spf13/pflag"

	"github.com/sockplay/sockplay/sdk"
	"github.com/sockplay/sockplay/sdk/client"
	"github.com/sockplay/sockplay/sdk/escape"
)

// sendCommand is `sockplay-udpecho send [ADDR] [--timeout D]`: each stdin
// line goes out as one datagram and the reply is printed; a line with no
// reply within the timeout is reported, and the exit status is 1 if any was
// lost. As in the tutorial, an empty line or "quit" ends it.
func sendCommand() client.Command {
	timeout := 2 * time.Second
	return client.Command{
		Name: "send", Args: "[ADDR]", MaxArgs: 1,
		Summary: "send stdin lines as datagrams, print the replies",
		Help: `Each stdin line goes out as one datagram and the reply is printed (control
characters escaped). A line with no reply within the timeout is reported, and
the exit status is then 1. As in the tutorial, an empty line or "quit" ends it.
ADDR defaults to 127.0.0.1:12345.`,
		Example: `printf 'hi\n' | sockplay-udpecho send
sockplay-udpecho send 127.0.0.1:12345 --timeout 500ms`,
		Flags: func(fs *pflag.FlagSet) {
			fs.DurationVar(&timeout, "timeout", timeout, "wait up to `D` for each reply")
		},
		Run: func(ctx context.Context, args []string, stdio client.Stdio) error {
			if timeout <= 0 {
				return fmt.Errorf("%w: --timeout %s: want a positive duration such as 2s", client.ErrUsage, timeout)
			}
			addr := Plugin().DefaultAddr
			if len(args) == 1 {
				addr = args[0]
			}
			return send(ctx, addr, timeout, stdio)
		},
	}
}

func send(ctx context.Context, addr string, timeout time.Duration, stdio client.Stdio) error {
	c, err := client.Dial(ctx, "udp", addr)
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
		fmt.Fprintf(stdio.Out, "%s\n", escape.String(string(buf[:n])))
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if lost > 0 {
		return fmt.Errorf("%d of the datagrams got no reply", lost)
	}
	return nil
}
