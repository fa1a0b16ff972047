package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/sockplay/sockplay/sdk/client"
)

// connectCommand is `sockplay-chat connect [ADDR] [--nick NAME]`: like the
// tutorial's threaded client, one goroutine sends stdin's lines while the
// other prints the room as it comes, so other people's lines appear while you
// type. It starts by asking for the nick, if given, and the list of who is
// here (which also brings the server's welcome). The end of stdin or /quit
// leaves.
func connectCommand() client.Command {
	var nick string
	return client.Command{
		Name: "connect", Args: "[ADDR]", MaxArgs: 1,
		Summary: "join the room: stdin lines are sent, the room is printed",
		Help: `Like the tutorial's threaded client, one goroutine sends stdin's lines
while another prints the room as it comes (control characters escaped), so
other people's lines appear while you type. It asks for the nick, if given,
and for the list of who is here. The end of stdin, or /quit, leaves.
ADDR defaults to 127.0.0.1:12346.`,
		Example: `sockplay-chat connect --nick alice
sockplay-chat connect 127.0.0.1:12346`,
		Flags: func(fs *pflag.FlagSet) {
			fs.StringVar(&nick, "nick", "", "join as `NAME` (a letter, then letters, digits, - or _)")
		},
		Run: func(ctx context.Context, args []string, stdio client.Stdio) error {
			addr := Plugin().DefaultAddr
			if len(args) == 1 {
				addr = args[0]
			}
			if nick != "" {
				if err := validNick(nick); err != nil {
					return fmt.Errorf("%w: --nick: %v", client.ErrUsage, err)
				}
			}
			return connect(ctx, addr, nick, stdio)
		},
	}
}

func connect(ctx context.Context, addr, nick string, stdio client.Stdio) error {
	c, err := client.Dial(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()

	sent := make(chan error, 1)
	go func() { sent <- sendLines(c, nick, stdio.In) }()

	rerr := printLines(stdio.Out, c)
	c.Close() // a sender still writing stops now
	if ctx.Err() != nil {
		return nil
	}
	select {
	case err := <-sent:
		if err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, errQuit) {
			return err
		}
	case <-time.After(100 * time.Millisecond):
		// The server closed first; the sender is blocked reading stdin.
	}
	if rerr != nil && !errors.Is(rerr, net.ErrClosed) {
		return rerr
	}
	return nil
}

var errQuit = errors.New("quit")

// sendLines sends the opening commands and then stdin's non-empty lines.
// At the end of stdin it half-closes, so the server sees the client leave
// and the lines still on their way are printed.
func sendLines(c net.Conn, nick string, in io.Reader) error {
	w := bufio.NewWriter(c)
	if nick != "" {
		fmt.Fprintf(w, "/nick %s\n", nick)
	}
	w.WriteString("/who\n")
	if err := w.Flush(); err != nil {
		return err
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 4096), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		if _, err := io.WriteString(c, line+"\n"); err != nil {
			return err
		}
		if line == "quit" || strings.EqualFold(line, "/quit") {
			return errQuit // the server says bye and closes
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return c.(*net.TCPConn).CloseWrite()
}

// printLines prints what the server sends, line by line, made harmless for
// the terminal in case the server is not this one.
func printLines(out io.Writer, c net.Conn) error {
	r := bufio.NewReaderSize(c, 64<<10)
	w := bufio.NewWriter(out)
	for {
		line, err := r.ReadSlice('\n')
		if len(line) > 0 {
			text, _ := Neutralise(trimEOL(line))
			w.WriteString(text)
			if !errors.Is(err, bufio.ErrBufferFull) {
				w.WriteByte('\n')
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue // the rest of a long line follows
		}
		// Print as soon as nothing more is waiting, so lines appear as they come.
		if err != nil || r.Buffered() == 0 {
			if ferr := w.Flush(); ferr != nil {
				return ferr
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return b
}
