// Command sockplay-deadlock is a test plugin written against the contract
// without the SDK (go-plugin, the control service, the descriptor wire on fd
// 3): a line echo whose control service deadlocks on demand. On the line
//
//	deadlock  the handler takes the lock every control call needs and never
//	          lets go: Health, Stats and Drain hang from then on, while the
//	          process and its connections go on
//
// It lists no features, so the host treats it as a plugin that does not
// answer handoffs (no handoff-ack).
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"

	"github.com/hashicorp/go-plugin"

	"github.com/sockplay/sockplay/sdk/protocol"
	"github.com/sockplay/sockplay/sdk/protocol/fdpass"
)

func main() {
	if os.Getenv(protocol.Handshake.MagicCookieKey) != protocol.Handshake.MagicCookieValue {
		fmt.Fprintln(os.Stderr, "sockplay-deadlock: a test plugin with no client commands; sockplay serve runs it")
		os.Exit(2)
	}
	ctl := &control{}
	fd, err := strconv.Atoi(os.Getenv(protocol.HandoffFDEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, "sockplay-deadlock: no handoff socket")
		os.Exit(1)
	}
	f := os.NewFile(uintptr(fd), "handoff")
	c, err := fdpass.FileConn(f)
	f.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, "sockplay-deadlock:", err)
		os.Exit(1)
	}
	go receive(fdpass.NewReceiver(c), ctl)
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  protocol.Handshake,
		VersionedPlugins: protocol.PluginSet(ctl),
		GRPCServer:       plugin.DefaultGRPCServer,
	})
}

// control is the control service; every call takes mu.
type control struct {
	protocol.UnimplementedControlServer
	mu sync.Mutex
}

func (c *control) Describe(context.Context, *protocol.DescribeRequest) (*protocol.Description, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return &protocol.Description{Name: "deadlock", Version: "0.0.1", Summary: "a line echo whose control service deadlocks on demand",
		Transport: protocol.Transport_TRANSPORT_TCP, DefaultAddr: "127.0.0.1:0"}, nil
}

func (c *control) Configure(context.Context, *protocol.ConfigureRequest) (*protocol.ConfigureResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return &protocol.ConfigureResponse{}, nil
}

func (c *control) Health(context.Context, *protocol.HealthRequest) (*protocol.HealthResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return &protocol.HealthResponse{Serving: true}, nil
}

func (c *control) Stats(context.Context, *protocol.StatsRequest) (*protocol.StatsResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return &protocol.StatsResponse{}, nil
}

func (c *control) Drain(context.Context, *protocol.DrainRequest) (*protocol.DrainResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return &protocol.DrainResponse{}, nil
}

// receive serves the connections the host hands over until the host is
// gone; then the process ends with its group.
func receive(r *fdpass.Receiver, ctl *control) {
	for {
		batch, err := r.Recv()
		switch {
		case err == nil, errors.Is(err, fdpass.ErrTruncated):
		case errors.Is(err, fdpass.ErrShortMessage), errors.Is(err, fdpass.ErrBadVersion), errors.Is(err, fdpass.ErrCountMismatch):
			continue
		default: // end of file: the host is gone
			_ = syscall.Kill(-os.Getpid(), syscall.SIGKILL)
			os.Exit(1)
		}
		for _, h := range batch {
			if h.File == nil {
				continue
			}
			c, err := net.FileConn(h.File)
			h.File.Close()
			if err == nil {
				go echo(c, ctl)
			}
		}
	}
}

func echo(c net.Conn, ctl *control) {
	defer c.Close()
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		if sc.Text() == "deadlock" {
			ctl.mu.Lock() // and never Unlock
			fmt.Fprintln(c, "locked")
			continue
		}
		fmt.Fprintln(c, sc.Text())
	}
}
