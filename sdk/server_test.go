package sdk_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sockplay/sockplay/sdk"
	"github.com/sockplay/sockplay/sdk/sdktest"
)

// timeout bounds every socket operation and every wait in these tests.
const timeout = 5 * time.Second

// waitFor polls cond every few milliseconds until it holds or timeout passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: still waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// recv waits for a value from ch for at most timeout.
func recv[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(timeout):
		t.Fatalf("after %s: still waiting for %s", timeout, what)
		panic("unreachable")
	}
}

// serve runs srv.Serve on a loopback listener. The returned channel gets
// Serve's result; cleanup shuts the server down (if the test did not) and
// waits for Serve.
func serve(t *testing.T, srv *sdk.Server) (addr string, served <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		done <- srv.Serve(ln)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		srv.Shutdown(ctx)
		select {
		case <-finished:
		case <-time.After(timeout):
			t.Errorf("Serve did not return after Shutdown")
		}
	})
	return ln.Addr().String(), done
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	_ = c.SetDeadline(time.Now().Add(timeout))
	t.Cleanup(func() { c.Close() })
	return c
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client = dial(t, ln.Addr().String())
	_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(timeout))
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	_ = server.SetDeadline(time.Now().Add(timeout))
	t.Cleanup(func() { server.Close() })
	return client, server
}

// lineEcho answers each line with "echo: LINE" and panics on a line "panic".
func lineEcho(_ context.Context, c net.Conn) {
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		if sc.Text() == "panic" {
			panic("asked to")
		}
		if _, err := io.WriteString(c, "echo: "+sc.Text()+"\n"); err != nil {
			return
		}
	}
}

// ask writes line and reads one reply line.
func ask(t *testing.T, c net.Conn, r *bufio.Reader, line string) string {
	t.Helper()
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		t.Fatalf("write %q: %v", line, err)
	}
	reply, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("reply to %q: %v", line, err)
	}
	return strings.TrimSuffix(reply, "\n")
}

func TestServerPanicClosesOnlyItsConn(t *testing.T) {
	srv := sdk.NewServer(sdk.HandlerFunc(lineEcho), sdktest.Logger(t, "demo"))
	addr, _ := serve(t, srv)

	a := dial(t, addr)
	ar := bufio.NewReader(a)
	if got := ask(t, a, ar, "one"); got != "echo: one" {
		t.Fatalf("a: %q", got)
	}

	b := dial(t, addr)
	if _, err := io.WriteString(b, "panic\n"); err != nil {
		t.Fatal(err)
	}
	if n, err := b.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("panicking conn: read %d, %v; want io.EOF (closed by the server)", n, err)
	}

	if got := ask(t, a, ar, "two"); got != "echo: two" {
		t.Fatalf("a after b's panic: %q", got)
	}
	c := dial(t, addr)
	if got := ask(t, c, bufio.NewReader(c), "three"); got != "echo: three" {
		t.Fatalf("new conn after a panic: %q", got)
	}
	waitFor(t, "stats after the panic", func() bool {
		return srv.Stats() == sdk.Stats{Active: 2, Total: 3, Panics: 1}
	})

	a.Close()
	c.Close()
	waitFor(t, "no active conns", func() bool { return srv.Stats() == sdk.Stats{Active: 0, Total: 3, Panics: 1} })
}

func TestServerShutdownDrains(t *testing.T) {
	// cooperative handlers return soon after their ctx is cancelled;
	// stubborn ones ignore ctx and block on the conn until it is closed.
	cases := []struct {
		name                  string
		cooperative, stubborn int
		wait                  time.Duration // Shutdown's deadline
	}{
		{"idle", 0, 0, time.Second},
		{"cooperative handlers finish", 3, 0, timeout},
		{"stubborn handlers are closed", 0, 2, 100 * time.Millisecond},
		{"mixed", 2, 2, 500 * time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var started, returned, sawCancel atomic.Int32
			h := sdk.HandlerFunc(func(ctx context.Context, c net.Conn) {
				defer returned.Add(1)
				var mode [1]byte
				if _, err := io.ReadFull(c, mode[:]); err != nil {
					return
				}
				started.Add(1)
				if mode[0] == 's' {
					_, _ = io.Copy(io.Discard, c) // until the server closes c
					return
				}
				<-ctx.Done()
				if errors.Is(ctx.Err(), context.Canceled) {
					sawCancel.Add(1)
				}
				time.Sleep(20 * time.Millisecond) // some cleanup
			})
			srv := sdk.NewServer(h, sdktest.Logger(t, "demo"))
			addr, served := serve(t, srv)
			var clients []net.Conn
			for i := range tc.cooperative + tc.stubborn {
				c := dial(t, addr)
				mode := "c"
				if i >= tc.cooperative {
					mode = "s"
				}
				if _, err := io.WriteString(c, mode); err != nil {
					t.Fatal(err)
				}
				clients = append(clients, c)
			}
			total := int32(tc.cooperative + tc.stubborn)
			waitFor(t, "handlers to start", func() bool { return started.Load() == total })

			ctx, cancel := context.WithTimeout(context.Background(), tc.wait)
			defer cancel()
			start := time.Now()
			forced := srv.Shutdown(ctx)
			took := time.Since(start)

			if forced != tc.stubborn {
				t.Errorf("Shutdown forced %d, want %d", forced, tc.stubborn)
			}
			if got := returned.Load(); got != total {
				t.Errorf("Shutdown returned with %d of %d handlers returned", got, total)
			}
			if got := sawCancel.Load(); got != int32(tc.cooperative) {
				t.Errorf("%d handlers saw context.Canceled, want %d", got, tc.cooperative)
			}
			if tc.stubborn == 0 && took > time.Second {
				t.Errorf("Shutdown took %s with only cooperative handlers", took)
			}
			if st := srv.Stats(); st.Active != 0 || st.Total != uint64(total) {
				t.Errorf("Stats after Shutdown: %+v, want Active 0, Total %d", st, total)
			}
			if err := recv(t, "Serve to return", served); !errors.Is(err, sdk.ErrServerClosed) {
				t.Errorf("Serve: %v, want ErrServerClosed", err)
			}
			for i, c := range clients {
				if n, err := c.Read(make([]byte, 1)); err != io.EOF {
					t.Errorf("client %d after Shutdown: read %d, %v; want io.EOF", i, n, err)
				}
			}
			// Shutdown closed the listener.
			if c, err := net.DialTimeout("tcp", addr, timeout); err == nil {
				c.Close()
				t.Errorf("dial %s after Shutdown: connected", addr)
			}
		})
	}
}

func TestServerServeConnAfterShutdown(t *testing.T) {
	var called atomic.Bool
	srv := sdk.NewServer(sdk.HandlerFunc(func(context.Context, net.Conn) { called.Store(true) }), nil)
	if forced := srv.Shutdown(context.Background()); forced != 0 {
		t.Fatalf("Shutdown of an idle server forced %d", forced)
	}
	client, server := tcpPair(t)
	srv.ServeConn(server)
	if n, err := client.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read from a conn served after Shutdown: %d, %v; want io.EOF", n, err)
	}
	if called.Load() {
		t.Fatal("handler ran after Shutdown")
	}
	if st := srv.Stats(); st != (sdk.Stats{}) {
		t.Fatalf("Stats: %+v, want zero", st)
	}
}

func TestServerServeAfterShutdown(t *testing.T) {
	srv := sdk.NewServer(sdk.HandlerFunc(lineEcho), nil)
	srv.Shutdown(context.Background())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	if err := recv(t, "Serve to return", done); !errors.Is(err, sdk.ErrServerClosed) {
		t.Fatalf("Serve after Shutdown: %v, want ErrServerClosed", err)
	}
}

func TestServerServeListenerClosed(t *testing.T) {
	srv := sdk.NewServer(sdk.HandlerFunc(lineEcho), nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	c := dial(t, ln.Addr().String()) // Serve is accepting
	if got := ask(t, c, bufio.NewReader(c), "hi"); got != "echo: hi" {
		t.Fatalf("reply %q", got)
	}
	ln.Close()
	err = recv(t, "Serve to return", done)
	if err == nil || errors.Is(err, sdk.ErrServerClosed) || !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Serve with its listener closed by someone else: %v, want net.ErrClosed", err)
	}
	// The server itself still runs its connections.
	if got := ask(t, c, bufio.NewReader(c), "still"); got != "echo: still" {
		t.Fatalf("reply %q", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if forced := srv.Shutdown(ctx); forced != 1 {
		t.Fatalf("Shutdown forced %d, want 1 (the client's conn)", forced)
	}
}

func TestServerHandlerContext(t *testing.T) {
	log := hclog.NewNullLogger()
	got := make(chan hclog.Logger, 1)
	srv := sdk.NewServer(sdk.HandlerFunc(func(ctx context.Context, c net.Conn) {
		got <- sdk.Logger(ctx)
	}), log)
	addr, _ := serve(t, srv)
	dial(t, addr)
	if l := recv(t, "the handler", got); l != log {
		t.Fatalf("sdk.Logger(ctx) in a handler is not the server's logger")
	}
	if l := sdk.Logger(context.Background()); l == nil {
		t.Fatal("sdk.Logger(context.Background()) is nil, want a logger that discards")
	}
}
