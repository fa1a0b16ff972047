package sdk_test

import (
	"context"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sockplay/sockplay/sdk"
	"github.com/sockplay/sockplay/sdk/protocol"
	"github.com/sockplay/sockplay/sdk/protocol/rules"
)

func TestServerRules(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var handled atomic.Int32
	srv := sdk.NewServer(sdk.HandlerFunc(func(ctx context.Context, c net.Conn) {
		handled.Add(1)
		c.Write([]byte(c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().String() + "\n"))
	}), nil)
	r, err := rules.Compile(&protocol.Rules{Deny: []string{"127.0.0.3"}, ProxyProtocol: []string{"127.0.0.4"}})
	if err != nil {
		t.Fatal(err)
	}
	g := rules.NewGate(r)
	var refused []rules.Reason
	refusedCh := make(chan rules.Reason, 8)
	g.OnRefuse(func(rf rules.Refusal) { refusedCh <- rf.Reason })
	sdk.SetGate(srv, g)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	dial := func(src string) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		return c
	}
	read := func(c net.Conn) string {
		b, _ := io.ReadAll(c)
		return string(b)
	}
	if got := read(dial("127.0.0.3")); got != "" {
		t.Fatalf("a denied client read %q", got)
	}
	refused = append(refused, <-refusedCh)
	if got := read(dial("127.0.0.2")); got != "127.0.0.2\n" {
		t.Fatalf("an allowed client read %q", got)
	}
	// A trusted proxy that sends its header late is held before the
	// handler, and Shutdown closes it at once: it never reached a handler.
	late := dial("127.0.0.4")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The accept loop has taken the proxy's connection once a later one is served.
	if got := read(dial("127.0.0.5")); got != "127.0.0.5\n" {
		t.Fatalf("read %q", got)
	}
	if err := srv.Shutdown(ctx); err != nil || srv.Stats().Forced != 0 {
		t.Fatalf("Shutdown: %v, forced %d connections; a header being read is no handler's", err, srv.Stats().Forced)
	}
	if got := read(late); got != "" {
		t.Fatalf("the proxy's connection read %q", got)
	}
	if err := <-served; err != sdk.ErrServerClosed {
		t.Fatalf("Serve: %v", err)
	}
	if n := handled.Load(); n != 2 || len(refused) != 1 || refused[0] != rules.Deny {
		t.Fatalf("%d handled, refused %v; want 2 handled and one deny", n, refused)
	}
}
