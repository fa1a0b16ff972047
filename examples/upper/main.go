// Command sockplay-upper is a small example plugin (the README's, `sockplay
// new shout`, is the same shape, written for you): it answers each
// line with the line in upper case. Build it into the plugin directory and the
// host finds it:
//
//	go build -o bin/sockplay-upper ./examples/upper
//	bin/sockplay serve --enable upper
package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"

	"github.com/sockplay/sockplay/sdk"
	"github.com/sockplay/sockplay/sdk/client"
	"github.com/sockplay/sockplay/sdk/escape"
)

func main() { sdk.Main(Plugin()) }

// Plugin describes the upper plugin.
func Plugin() sdk.Plugin {
	return sdk.Plugin{
		Name:        "upper",
		Version:     "0.1.0",
		Summary:     "answers each line in upper case",
		DefaultAddr: "127.0.0.1:12349",
		Options:     []sdk.Option{{Name: "prefix", Default: "", Help: "put before each answer"}},
		TCP: func(cfg sdk.Config) (sdk.Handler, error) {
			prefix := cfg.String("prefix")
			return sdk.HandlerFunc(func(ctx context.Context, c net.Conn) {
				sc := bufio.NewScanner(c)
				for sc.Scan() && ctx.Err() == nil {
					fmt.Fprintf(c, "%s%s\n", prefix, strings.ToUpper(sc.Text()))
				}
			}), nil
		},
		// Optional: what `sockplay-upper connect ...` runs when started by hand.
		Commands: []client.Command{{
			Name: "connect", Args: "ADDR", MinArgs: 1, MaxArgs: 1,
			Summary: "send stdin lines, print the answers",
			Run:     connect,
		}},
	}
}

// connect is `sockplay-upper connect ADDR`: each stdin line goes out, each
// answer is printed.
func connect(ctx context.Context, args []string, stdio client.Stdio) error {
	c, err := client.Dial(ctx, "tcp", args[0])
	if err != nil {
		return err
	}
	defer c.Close()
	in, out := bufio.NewScanner(stdio.In), bufio.NewScanner(c)
	for in.Scan() {
		fmt.Fprintf(c, "%s\n", in.Text())
		if !out.Scan() {
			return fmt.Errorf("server closed: %v", out.Err())
		}
		fmt.Fprintln(stdio.Out, escape.String(out.Text()))
	}
	return in.Err()
}
