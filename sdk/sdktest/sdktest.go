// Package sdktest runs a plugin's handler in-process behind a real loopback
// socket, so that a plugin's unit tests need no host:
//
//	func TestEcho(t *testing.T) {
//		in := sdktest.Start(t, plugin, nil)
//		c := in.Dial(t)
//		c.Write([]byte("hi"))
//		...
//	}
//
// The handler runs under the same sdk.Server (or sdk.PacketServer) the plugin
// runtime uses, so panic recovery and draining behave as they do under the host.
// Everything is stopped by the test's cleanup.
package sdktest

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sockplay/sockplay/sdk"
)

// Instance is a plugin served in-process on 127.0.0.1.
type Instance struct {
	// Addr is the loopback address the plugin listens on.
	Addr string
	// Server serves a TCP plugin (nil for UDP).
	Server *sdk.Server
	// PacketServer serves a UDP plugin (nil for TCP).
	PacketServer *sdk.PacketServer
	// Config is the configuration the handler was built from.
	Config sdk.Config
}

// Start validates p, builds its handler from options (defaults for the rest)
// and serves it on an ephemeral 127.0.0.1 port until the test ends. The
// plugin's log goes to t.Log.
func Start(t testing.TB, p sdk.Plugin, options map[string]string) *Instance {
	t.Helper()
	in, err := start(t, p, options)
	if err != nil {
		t.Fatalf("sdktest: %v", err)
	}
	return in
}

// Configure builds p's configuration from options the way the host would and
// returns the error p's handler constructor gives, without serving anything:
// it is how a test checks that bad options are refused.
func Configure(t testing.TB, p sdk.Plugin, options map[string]string) error {
	t.Helper()
	if err := p.Validate(); err != nil {
		return err
	}
	cfg, err := p.Config(options, Logger(t, p.Name))
	if err != nil {
		return err
	}
	if p.UDP != nil {
		_, err = p.UDP(cfg)
	} else {
		_, err = p.TCP(cfg)
	}
	return err
}

func start(t testing.TB, p sdk.Plugin, options map[string]string) (*Instance, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	log := Logger(t, p.Name)
	cfg, err := p.Config(options, log)
	if err != nil {
		return nil, err
	}
	in := &Instance{Config: cfg}
	switch {
	case p.UDP != nil:
		h, err := p.UDP(cfg)
		if err != nil {
			return nil, err
		}
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		in.Addr = pc.LocalAddr().String()
		in.PacketServer = sdk.NewPacketServer(h, log)
		done := make(chan struct{})
		go func() { defer close(done); _ = in.PacketServer.Serve(pc) }()
		t.Cleanup(func() { shutdown(in.PacketServer.Shutdown); <-done })
	default:
		h, err := p.TCP(cfg)
		if err != nil {
			return nil, err
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		in.Addr = ln.Addr().String()
		in.Server = sdk.NewServer(h, log)
		done := make(chan struct{})
		go func() { defer close(done); _ = in.Server.Serve(ln) }()
		t.Cleanup(func() { shutdown(in.Server.Shutdown); <-done })
	}
	return in, nil
}

func shutdown(f func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = f(ctx) // a handler that outlives 2 s is closed under it; the test has ended
}

// Dial connects to a TCP plugin, with a 5 s deadline on the whole connection
// so that a test that waits for a reply that never comes fails instead of
// hanging. The connection is closed when the test ends.
func (in *Instance) Dial(t testing.TB) net.Conn {
	t.Helper()
	return in.dial(t, "tcp")
}

// DialUDP returns a UDP socket connected to a UDP plugin, with a 5 s deadline.
func (in *Instance) DialUDP(t testing.TB) net.Conn {
	t.Helper()
	return in.dial(t, "udp")
}

func (in *Instance) dial(t testing.TB, network string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout(network, in.Addr, 5*time.Second)
	if err != nil {
		t.Fatalf("sdktest: dial %s %s: %v", network, in.Addr, err)
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

// Logger returns an hclog.Logger that writes to t.Log.
func Logger(t testing.TB, name string) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: name, Output: testWriter{t}, Level: hclog.Debug})
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}
