package client_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/sockplay/sockplay/sdk/client"
)

// Run is what a plugin binary run by hand does (sdk.Main calls it with the
// Program sdk.Plugin's Client makes); tests call it to run the client
// in-process. A command's Run returns (or wraps) ErrUsage for a bad command
// line: exit status 2.
func ExampleRun() {
	var loud bool
	prog := client.Program{
		Name:    "greeter",
		Version: "1.0.0",
		Summary: "greets",
		Commands: []client.Command{{
			Name: "hello", Args: "NAME", MinArgs: 1, MaxArgs: 1,
			Summary: "print a greeting",
			Flags:   func(fs *pflag.FlagSet) { fs.BoolVar(&loud, "loud", false, "shout") },
			Run: func(ctx context.Context, args []string, stdio client.Stdio) error {
				if args[0] == "" {
					return fmt.Errorf("%w: an empty NAME", client.ErrUsage)
				}
				greeting := "hello, " + args[0]
				if loud {
					greeting = strings.ToUpper(greeting)
				}
				fmt.Fprintln(stdio.Out, greeting)
				return nil
			},
		}},
	}
	stdio := client.Stdio{In: os.Stdin, Out: os.Stdout, Err: os.Stdout}
	ctx := context.Background()
	fmt.Println("exit", client.Run(ctx, prog, []string{"--version"}, stdio))
	fmt.Println("exit", client.Run(ctx, prog, []string{"hello", "gopher"}, stdio))
	fmt.Println("exit", client.Run(ctx, prog, []string{"hello", "gopher", "--loud"}, stdio))
	fmt.Println("exit", client.Run(ctx, prog, []string{"hello"}, stdio))
	fmt.Println("exit", client.Run(ctx, prog, []string{"hello", ""}, stdio))
	// Output:
	// sockplay-greeter 1.0.0 (sockplay protocol 1)
	// exit 0
	// hello, gopher
	// exit 0
	// HELLO, GOPHER
	// exit 0
	// sockplay-greeter: hello: want NAME (see 'sockplay-greeter hello --help')
	// exit 2
	// sockplay-greeter: an empty NAME (see 'sockplay-greeter hello --help')
	// exit 2
}

// A command dials the server with Dial: the attempt is bounded by
// DialTimeout, and cancelling ctx (Ctrl-C, in a command's Run) closes the
// connection, which ends a read that waits for the server.
func ExampleDial() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() { // a server that greets, then says nothing more
		c, err := ln.Accept()
		if err == nil {
			fmt.Fprintln(c, "welcome")
		}
		accepted <- c
	}()
	defer func() {
		if c := <-accepted; c != nil {
			c.Close()
		}
	}()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := client.Dial(ctx, "tcp", ln.Addr().String())
	if err != nil {
		fmt.Println(err)
		return
	}
	r := bufio.NewReader(c)
	line, _ := r.ReadString('\n')
	fmt.Print(line)
	cancel() // as Ctrl-C does
	_, err = r.ReadString('\n')
	fmt.Println("after cancel:", errors.Is(err, net.ErrClosed))
	// Output:
	// welcome
	// after cancel: true
}
