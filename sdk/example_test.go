package sdk_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sockplay/sockplay/sdk"
	"github.com/sockplay/sockplay/sdk/client"
)

// A plugin's main is Main and little else: started by the host, the binary
// serves; run by hand, it is the protocol's client. (Main exits the process,
// so this example is compiled, not run.)
func ExampleMain() {
	sdk.Main(sdk.Plugin{
		Name:        "echo",
		Version:     "1.0.0",
		Summary:     "sends back what it receives",
		DefaultAddr: "127.0.0.1:12348",
		TCP: func(cfg sdk.Config) (sdk.Handler, error) {
			return sdk.HandlerFunc(func(ctx context.Context, c net.Conn) {
				_, _ = io.Copy(c, c)
			}), nil
		},
	})
}

// Validate, which Main calls first, names what is wrong with a Plugin. Its
// transport follows from its handler: TCP or UDP, exactly one.
func ExamplePlugin_Validate() {
	p := sdk.Plugin{Name: "echo", Version: "1.0.0", DefaultAddr: "127.0.0.1:12348"}
	fmt.Println(p.Validate())
	p.UDP = func(sdk.Config) (sdk.PacketHandler, error) { return sdk.DatagramFunc(nil), nil }
	fmt.Println(p.Validate())
	p.Version = "1.0"
	fmt.Println(p.Validate())
	// Output:
	// plugin echo: no handler: set TCP for a TCP plugin or UDP for a UDP plugin
	// <nil>
	// plugin echo: version "1.0" is not a semantic version (1.2.3)
}

// A HandlerFunc serves one connection; ServeConn runs it on a connection the
// caller accepted (the plugin runtime's way with a handed-over descriptor),
// and the Server closes the connection when it returns.
func ExampleHandlerFunc() {
	greet := sdk.HandlerFunc(func(ctx context.Context, c net.Conn) {
		fmt.Fprintln(c, "hello from the plugin")
	})
	srv := sdk.NewServer(greet, nil)
	client, server := net.Pipe()
	srv.ServeConn(server)
	reply, err := io.ReadAll(client) // until the Server closes its end
	fmt.Printf("%q %v\n", reply, err)
	_ = srv.Shutdown(context.Background())
	// Output:
	// "hello from the plugin\n" <nil>
}

// Close stops a Server at once: it closes the listener and every
// connection, without waiting for a handler that ignores its context
// (Shutdown would give it until its deadline). Stats counts what it cut off.
func ExampleServer_Close() {
	started := make(chan struct{})
	stubborn := sdk.HandlerFunc(func(_ context.Context, c net.Conn) {
		close(started)
		_, _ = io.Copy(io.Discard, c) // ends only when c is closed
	})
	srv := sdk.NewServer(stubborn, nil)
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
	<-started
	fmt.Println("close:", srv.Close())
	fmt.Println("serve:", <-served)
	fmt.Println("forced:", srv.Stats().Forced)
	// Output:
	// close: <nil>
	// serve: sdk: server closed
	// forced: 1
}

// A PacketHandlerFunc owns its socket: it reads datagrams and writes replies
// until its context is cancelled. PacketServer.Serve blocks until Shutdown,
// which cancels the context and wakes the read.
func ExamplePacketServer() {
	count := 0
	counter := sdk.PacketHandlerFunc(func(ctx context.Context, pc net.PacketConn) {
		buf := make([]byte, sdk.MaxDatagram)
		for ctx.Err() == nil {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				continue // the deadline Shutdown sets; ctx is cancelled by then
			}
			count++
			_, _ = pc.WriteTo(fmt.Appendf(nil, "datagram %d", count), from)
		}
	})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	srv := sdk.NewPacketServer(counter, nil)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(pc) }()

	c, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	for range 2 {
		_, _ = c.Write([]byte("x"))
		n, _ := c.Read(buf)
		fmt.Printf("%s\n", buf[:n])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fmt.Println("shutdown:", srv.Shutdown(ctx))
	fmt.Println("serve:", <-served)
	// Output:
	// datagram 1
	// datagram 2
	// shutdown: <nil>
	// serve: sdk: server closed
}

// A handler finds the plugin's logger in its context.
func ExampleLogger() {
	log := hclog.New(&hclog.LoggerOptions{Name: "echo", Output: os.Stdout, DisableTime: true})
	srv := sdk.NewServer(sdk.HandlerFunc(func(ctx context.Context, c net.Conn) {
		sdk.Logger(ctx).Info("client says hello", "bytes", 5)
	}), log)
	client, server := net.Pipe()
	srv.ServeConn(server)
	_, _ = io.ReadAll(client)
	_ = srv.Shutdown(context.Background())
	// Output:
	// [INFO]  echo: client says hello: bytes=5
}

// TemporaryAcceptError is how Serve tells an accept error to retry (EMFILE:
// out of descriptors) from one that ends it.
func ExampleTemporaryAcceptError() {
	fmt.Println(sdk.TemporaryAcceptError(&net.OpError{Op: "accept", Err: os.NewSyscallError("accept4", syscall.EMFILE)}))
	fmt.Println(sdk.TemporaryAcceptError(net.ErrClosed))
	// Output:
	// true
	// false
}

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
	fmt.Println("shutdown:", srv.Shutdown(ctx))
	fmt.Println("serve:", <-served)
	fmt.Printf("stats: %+v\n", srv.Stats())
	// Output:
	// reply: hello
	// shutdown: <nil>
	// serve: sdk: server closed
	// stats: {Active:0 Total:1 Panics:0 AcceptErrors:0 Forced:0}
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
	served := make(chan error, 1)
	go func() { served <- srv.Serve(pc) }() // the server closes pc on Shutdown
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-served
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

	cfg, _ = p.Config(map[string]string{"times": "2"}, nil)
	n, _ := cfg.Int("times")
	fmt.Println(strings.TrimSpace(strings.Repeat(cfg.String("greeting")+" ", n)))
	// Output:
	// hello 3 <nil>
	// greeter has no option "colour" (options: greeting, times)
	// option greeter.times="often": want an integer
	// hello hello
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
