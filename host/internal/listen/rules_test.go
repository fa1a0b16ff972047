package listen_test

import (
	"context"
	"errors"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/sockplay/sockplay/host/internal/listen"
	"github.com/sockplay/sockplay/sdk/protocol"
	"github.com/sockplay/sockplay/sdk/protocol/fdpass"
	"github.com/sockplay/sockplay/sdk/protocol/rules"
)

func compile(t *testing.T, p *protocol.Rules) *rules.Rules {
	t.Helper()
	r, err := rules.Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// dialFrom connects to addr from the loopback address src.
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: timeout}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, src, err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(timeout))
	return c
}

// refused reports whether the host closed c: a read returns the end (or a
// reset) rather than waiting for the deadline.
func refused(t *testing.T, c net.Conn) bool {
	t.Helper()
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return err != nil
}

func serveWith(t *testing.T, l *listen.TCP, s listen.Sink) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Serve(ctx, s) }()
	t.Cleanup(func() { cancel(); <-done })
}

func TestRulesAtAccept(t *testing.T) {
	l := listenTCP(t, 64)
	l.SetRules(compile(t, &protocol.Rules{Allow: []string{"127.0.0.0/8"}, Deny: []string{"127.0.0.3"}, MaxPerSource: 2}))
	s := newSink(t, nil)
	serveWith(t, l, s)
	addr := l.Addr().String()

	a1 := dialFrom(t, "127.0.0.2", addr)
	a2 := dialFrom(t, "127.0.0.2", addr)
	got := s.collect(t, 2)
	a3 := dialFrom(t, "127.0.0.2", addr)
	if !refused(t, a3) {
		t.Fatal("a third connection from 127.0.0.2 with --max-per-source 2 was not closed")
	}
	if !refused(t, dialFrom(t, "127.0.0.3", addr)) {
		t.Fatal("a connection from the denied 127.0.0.3 was not closed")
	}
	b := dialFrom(t, "127.0.0.4", addr)
	s.collect(t, 1)

	// The plugin closes one of .2's connections; the host learns it from
	// the kernel when the limit is reached, and admits the next.
	got[0].files[0].Close()
	a1.Close()
	a4 := dialFrom(t, "127.0.0.2", addr)
	s.collect(t, 1)
	for _, c := range []net.Conn{a2, b, a4} {
		_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if refused(t, c) {
			t.Fatalf("admitted connection %s was closed", c.LocalAddr())
		}
	}
	if r := l.Refused(); r["max-per-source"] != 1 || r["deny"] != 1 || len(r) != 2 {
		t.Fatalf("Refused() = %v", r)
	}
}

func TestMaxConnsAndSetRules(t *testing.T) {
	l := listenTCP(t, 64)
	s := newSink(t, nil)
	serveWith(t, l, s)
	addr := l.Addr().String()
	// Two open before any rule.
	dialFrom(t, "127.0.0.2", addr)
	dialFrom(t, "127.0.0.3", addr)
	s.collect(t, 2)
	// A limit set now counts them: the host asks the kernel what is open.
	l.SetRules(compile(t, &protocol.Rules{MaxConns: 3}))
	dialFrom(t, "127.0.0.4", addr)
	s.collect(t, 1)
	if !refused(t, dialFrom(t, "127.0.0.5", addr)) {
		t.Fatal("a fourth connection with --max-conns 3 was not closed")
	}
	l.SetRules(compile(t, &protocol.Rules{Deny: []string{"127.0.0.6"}}))
	dialFrom(t, "127.0.0.5", addr)
	s.collect(t, 1)
	if !refused(t, dialFrom(t, "127.0.0.6", addr)) {
		t.Fatal("a denied connection was not closed after SetRules")
	}
	l.SetRules(nil)
	dialFrom(t, "127.0.0.6", addr)
	s.collect(t, 1)
	if r := l.Refused(); r["max-conns"] != 1 || r["deny"] != 1 {
		t.Fatalf("Refused() = %v", r)
	}
}

func TestRateAtAccept(t *testing.T) {
	l := listenTCP(t, 64)
	l.SetRules(compile(t, &protocol.Rules{RatePerSource: 1.0 / 3600, RateBurst: 2}))
	s := newSink(t, nil)
	serveWith(t, l, s)
	addr := l.Addr().String()
	dialFrom(t, "127.0.0.2", addr)
	dialFrom(t, "127.0.0.2", addr)
	s.collect(t, 2)
	if !refused(t, dialFrom(t, "127.0.0.2", addr)) {
		t.Fatal("a third new connection within the burst of 2 was not closed")
	}
	dialFrom(t, "127.0.0.3", addr) // another source has its own bucket
	s.collect(t, 1)
	if c := dialFrom(t, "127.0.0.2", addr); !refused(t, c) {
		t.Fatal("refused, then admitted: the bucket refilled at 1/hour?")
	}
	if r := l.Refused(); r["rate"] != 2 {
		t.Fatalf("Refused() = %v", r)
	}
}

// closingSink is a plugin that serves each connection by closing it at once
// (a sink owns the connections it took).
type closingSink struct{}

func (closingSink) Send(_ fdpass.Kind, _ []uint64, fds []int) error {
	for _, fd := range fds {
		syscall.Close(fd)
	}
	return nil
}

func TestLimitForgetsClosedConnections(t *testing.T) {
	l := listenTCP(t, 64)
	l.SetRules(compile(t, &protocol.Rules{MaxPerSource: 100, MaxConns: 120}))
	serveWith(t, l, closingSink{})
	addr := l.Addr().String()
	// 350 connections one after another, each closed by the "plugin" (the
	// listener closes its copy after the handoff) and then by the client:
	// never more than one open, so none is refused, though the host asks
	// the kernel about 100 admitted connections at a time (in 4 batches).
	for i := range 350 {
		c := dialFrom(t, "127.0.0.2", addr)
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("read data from a connection nobody writes to")
		}
		c.Close()
		if r := l.Refused(); len(r) > 0 {
			t.Fatalf("connection %d: refused %v with at most one open", i, r)
		}
	}
}
