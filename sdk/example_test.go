package sdk_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/sockplay/sockplay/sdk"
	"github.com/sockplay/sockplay/sdk/client"
)

// A Server runs one goroutine per connection. This handler echoes, and wakes
// its blocked read when the server drains, so that Shutdown has nothing to
// force.
func ExampleServer() {
	echo := sdk.HandlerFunc(func(ctx context.Context, c net.Conn) {
		stop := context.AfterFunc(ctx, func() { _ = c.SetReadDeadline(time.Now()) })
		defer stop()
		_, _ = io.Copy(c, c)
	})
	srv := sdk.NewServer(echo, nil)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = c.Write([]byte("hello"))
	reply := make([]byte, 5)
	if _, err := io.ReadFull(c, reply); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("reply: %s\n", reply)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fmt.Println("forced:", srv.Shutdown(ctx))
	fmt.Println("serve:", <-served)
	fmt.Printf("stats: %+v\n", srv.Stats())
	// Output:
	// reply: hello
	// forced: 0
	// serve: sdk: server closed
	// stats: {Active:0 Total:1 Panics:0 AcceptErrors:0}
}

// DatagramFunc is the request/reply case of a UDP plugin: return the reply,
// or nil for none.
func ExampleDatagramFunc() {
	upper := sdk.DatagramFunc(func(ctx context.Context, payload []byte, from net.Addr) []byte {
		return bytes.ToUpper(payload)
	})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	srv := sdk.NewPacketServer(upper, nil)
	srv.Serve(pc) // the server closes pc on Shutdown
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()

	c, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = c.Write([]byte("hello, udp"))
	buf := make([]byte, sdk.MaxDatagram)
	n, err := c.Read(buf)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s\n", buf[:n])
	// Output:
	// HELLO, UDP
}

// A plugin's configuration holds every option it declares, with its default
// unless the host's --set NAME.KEY=VALUE gave another value.
func ExamplePlugin_Config() {
	p := sdk.Plugin{
		Name: "greeter",
		Options: []sdk.Option{
			{Name: "greeting", Default: "hello", Help: "what to say"},
			{Name: "times", Default: "1", Help: "how often"},
		},
	}
	cfg, err := p.Config(map[string]string{"times": "3"}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	times, err := cfg.Int("times")
	fmt.Println(cfg.String("greeting"), times, err)

	_, err = p.Config(map[string]string{"colour": "red"}, nil)
	fmt.Println(err)

	cfg, _ = p.Config(map[string]string{"times": "often"}, nil)
	_, err = cfg.Int("times")
	fmt.Println(err)
	// Output:
	// hello 3 <nil>
	// greeter has no option "colour" (options: greeting, times)
	// option greeter.times="often": want an integer
}

// A plugin's Commands make its binary, run by hand, the protocol's client;
// Main runs them with client.Run, and so does a test, in-process. Client
// adds to the --help how the host serves the plugin.
func ExamplePlugin_Client() {
	p := sdk.Plugin{
		Name:        "greeter",
		Version:     "1.0.0",
		Summary:     "greets",
		DefaultAddr: "127.0.0.1:12399",
		TCP: func(sdk.Config) (sdk.Handler, error) {
			return sdk.HandlerFunc(func(context.Context, net.Conn) {}), nil
		},
		Commands: []client.Command{{
			Name: "hello", Args: "NAME", MinArgs: 1, MaxArgs: 1,
			Summary: "print a greeting",
			Run: func(ctx context.Context, args []string, stdio client.Stdio) error {
				fmt.Fprintln(stdio.Out, "hello, "+args[0])
				return nil
			},
		}},
	}
	stdio := client.Stdio{In: os.Stdin, Out: os.Stdout, Err: os.Stdout}
	fmt.Println("exit", client.Run(context.Background(), p.Client(), []string{"hello", "gopher"}, stdio))
	fmt.Println(p.Client().Serving)
	// Output:
	// hello, gopher
	// exit 0
	// Served by the host (sockplay serve --enable greeter) on TCP 127.0.0.1:12399 by default.
}
