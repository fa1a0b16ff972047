//go:build unix

package sdk_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sockplay/sockplay/sdk"
	"github.com/sockplay/sockplay/sdk/sdktest"
)

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
		_ = srv.Shutdown(ctx) // a test that wants its error calls it first
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
			err := srv.Shutdown(ctx)
			took := time.Since(start)

			if forced := srv.Stats().Forced; forced != uint64(tc.stubborn) {
				t.Errorf("Shutdown forced %d, want %d", forced, tc.stubborn)
			}
			if wantErr := tc.stubborn > 0; wantErr != errors.Is(err, context.DeadlineExceeded) || !wantErr && err != nil {
				t.Errorf("Shutdown: %v; want context.DeadlineExceeded only when it forced", err)
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

// Close closes the listener and every connection at once, without waiting
// for a handler that ignores its context; Serve returns ErrServerClosed, and
// the connections closed count in Stats once.
func TestServerClose(t *testing.T) {
	started, release := make(chan struct{}, 2), make(chan struct{})
	srv := sdk.NewServer(sdk.HandlerFunc(func(_ context.Context, c net.Conn) {
		started <- struct{}{}
		_, _ = io.Copy(io.Discard, c) // until Close closes c
		<-release
	}), nil)
	defer close(release)
	addr, served := serve(t, srv)
	clients := []net.Conn{dial(t, addr), dial(t, addr)}
	recv(t, "the first handler", started)
	recv(t, "the second handler", started)

	done := make(chan error, 1)
	go func() { done <- srv.Close() }()
	if err := recv(t, "Close to return while the handlers still run", done); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := recv(t, "Serve to return", served); !errors.Is(err, sdk.ErrServerClosed) {
		t.Errorf("Serve after Close: %v, want ErrServerClosed", err)
	}
	for i, c := range clients {
		if n, err := c.Read(make([]byte, 1)); err == nil {
			t.Errorf("client %d after Close: read %d bytes, want the connection closed", i, n)
		}
	}
	if c, err := net.DialTimeout("tcp", addr, timeout); err == nil {
		c.Close()
		t.Errorf("dial %s after Close: connected", addr)
	}
	_ = srv.Close()
	if st := srv.Stats(); st.Forced != 2 {
		t.Errorf("Stats().Forced after Close twice = %d, want 2", st.Forced)
	}
}

func TestServerServeConnAfterShutdown(t *testing.T) {
	var called atomic.Bool
	srv := sdk.NewServer(sdk.HandlerFunc(func(context.Context, net.Conn) { called.Store(true) }), nil)
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown of an idle server: %v", err)
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
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown of an idle server: %v", err)
	}
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
	if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) || srv.Stats().Forced != 1 {
		t.Fatalf("Shutdown: %v, forced %d; want context.DeadlineExceeded, 1 (the client's conn)", err, srv.Stats().Forced)
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

// syncBuffer is a log output the test reads while the server writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func bufferLogger(out io.Writer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "demo", Output: out, Level: hclog.Debug})
}

// readToEnd reads c until end of file or an error, and returns what it read
// and the error (nil for end of file).
func readToEnd(c net.Conn) ([]byte, error) {
	var got []byte
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if errors.Is(err, io.EOF) {
			return got, nil
		}
		if err != nil {
			return got, err
		}
	}
}

// TestServerOrderlyClose: a client that sends bytes the handler never reads
// gets the reply and then end of file, not a reset (ECONNRESET), whatever the
// handler does; the lingering close that gives it is bounded.
func TestServerOrderlyClose(t *testing.T) {
	const greeting = "greeting\n"
	cases := []struct {
		name      string
		linger    time.Duration // 0: the SDK's default; <0: off
		bytes     int64
		handler   string // "greet": write the greeting and return; "panic": write it and panic; "close": close the conn itself
		send      int    // bytes the client sends first, never read by the handler
		wantReset bool
	}{
		{name: "speak-first client", handler: "greet", send: 14},
		{name: "a large unread request", handler: "greet", send: 1 << 20},
		{name: "handler panics", handler: "panic", send: 100},
		{name: "handler closes the conn itself", handler: "greet-close", send: 0},
		// The controls: without the lingering close, or past its byte bound,
		// the kernel resets, so the cases above can fail.
		{name: "control: no lingering close", linger: -1, handler: "greet", send: 14, wantReset: true},
		{name: "control: more than LingerBytes unread", bytes: 4096, handler: "greet", send: 256 << 10, wantReset: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sent := make(chan struct{})
			returned := make(chan struct{}, 1)
			h := sdk.HandlerFunc(func(_ context.Context, c net.Conn) {
				defer func() { returned <- struct{}{} }()
				<-sent // the client's bytes are in our receive queue
				if _, err := io.WriteString(c, greeting); err != nil {
					t.Errorf("handler write: %v", err)
				}
				switch tc.handler {
				case "panic":
					panic("after the greeting")
				case "greet-close":
					c.Close()
				}
			})
			var logs syncBuffer
			srv := sdk.NewServer(h, bufferLogger(&logs))
			switch {
			case tc.linger < 0:
				sdk.SetLinger(srv, 0, 0)
			case tc.bytes > 0:
				sdk.SetLinger(srv, sdk.LingerTimeout, tc.bytes)
			}
			addr, _ := serve(t, srv)
			c := dial(t, addr)
			if tc.send > 0 {
				if _, err := c.Write(bytes.Repeat([]byte("x"), tc.send)); err != nil {
					t.Fatalf("client write: %v", err)
				}
			}
			// On loopback a write that returned has reached the server's
			// receive queue, unless that queue is full: the large cases send
			// more than it holds, and the rest waits in the client's.
			close(sent)
			recv(t, "the handler to return", returned)
			got, err := readToEnd(c)
			// The client is done too: it half-closes, and once the server
			// has closed, the socket's pending error says whether a reset
			// came. A reset after the server's FIN does not show in a read on
			// Linux (end of file comes first), only there and in the next
			// write; other stacks drop the unread reply.
			if err == nil {
				if cerr := c.(*net.TCPConn).CloseWrite(); cerr != nil {
					// ENOTCONN: a reset closed the socket already.
					if err = soError(t, c); err == nil {
						err = cerr
					}
				} else {
					waitFor(t, "the server to close", func() bool { return srv.Stats().Active == 0 })
					err = soError(t, c)
				}
			}
			isReset := errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
			switch {
			case tc.wantReset && !isReset:
				t.Fatalf("got %q, %v; want a reset (the control case)", got, err)
			case !tc.wantReset && err != nil:
				t.Fatalf("got %q, %v; want the greeting and end of file, no reset", got, err)
			case !tc.wantReset && string(got) != greeting:
				t.Fatalf("got %q; want %q", got, greeting)
			}
			waitFor(t, "the connection to be closed", func() bool { return srv.Stats().Active == 0 })
		})
	}
}

// soError returns c's pending socket error (SO_ERROR), nil if none.
func soError(t *testing.T, c net.Conn) error {
	t.Helper()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	if err := rc.Control(func(fd uintptr) { v, gerr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_ERROR) }); err != nil {
		t.Fatal(err)
	}
	if gerr != nil {
		t.Fatal(gerr)
	}
	if v != 0 {
		return syscall.Errno(v)
	}
	return nil
}

// TestServerLingerBounded: a client that reads the reply but never closes
// its side holds the server's connection only for the linger timeout, and
// Shutdown cuts a lingering close short.
func TestServerLingerBounded(t *testing.T) {
	h := sdk.HandlerFunc(func(_ context.Context, c net.Conn) { _, _ = io.WriteString(c, "bye\n") })
	t.Run("client never closes", func(t *testing.T) {
		srv := sdk.NewServer(h, nil)
		sdk.SetLinger(srv, 50*time.Millisecond, sdk.LingerBytes)
		addr, _ := serve(t, srv)
		c := dial(t, addr)
		if got, err := readToEnd(c); err != nil || string(got) != "bye\n" {
			t.Fatalf("got %q, %v", got, err)
		}
		// c stays open: the server closes its end when the timeout passes.
		waitFor(t, "the lingering connection to close", func() bool { return srv.Stats().Active == 0 })
	})
	t.Run("Shutdown ends the linger", func(t *testing.T) {
		srv := sdk.NewServer(h, nil)
		sdk.SetLinger(srv, time.Hour, sdk.LingerBytes)
		addr, _ := serve(t, srv)
		c := dial(t, addr)
		if got, err := readToEnd(c); err != nil || string(got) != "bye\n" {
			t.Fatalf("got %q, %v", got, err)
		}
		waitFor(t, "the handler to return", func() bool { return srv.Stats().Total == 1 })
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil || srv.Stats().Forced != 0 || ctx.Err() != nil {
			t.Fatalf("Shutdown: %v, forced %d, ctx %v; want the lingering conn closed at once, nothing forced", err, srv.Stats().Forced, ctx.Err())
		}
		if st := srv.Stats(); st.Active != 0 {
			t.Fatalf("after Shutdown: %+v", st)
		}
	})
}

func TestTemporaryAcceptError(t *testing.T) {
	wrap := func(errno syscall.Errno) error {
		return &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", errno)}
	}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{wrap(syscall.EMFILE), true},
		{wrap(syscall.ENFILE), true},
		{wrap(syscall.ENOBUFS), true},
		{wrap(syscall.ENOMEM), true},
		{wrap(syscall.ECONNABORTED), true},
		{wrap(syscall.EPROTO), true},
		{&net.OpError{Op: "accept", Err: os.ErrDeadlineExceeded}, true},
		{wrap(syscall.EBADF), false},
		{wrap(syscall.EINVAL), false},
		{net.ErrClosed, false},
		{errors.New("boom"), false},
	} {
		if got := sdk.TemporaryAcceptError(tc.err); got != tc.want {
			t.Errorf("TemporaryAcceptError(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// flakyListener fails its first Accepts with errs, then accepts from the
// real listener it wraps.
type flakyListener struct {
	net.Listener
	mu   sync.Mutex
	errs []error
}

func (l *flakyListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if len(l.errs) > 0 {
		err := l.errs[0]
		l.errs = l.errs[1:]
		l.mu.Unlock()
		return nil, err
	}
	l.mu.Unlock()
	return l.Listener.Accept()
}

// TestServerAcceptRetries: Serve survives temporary accept errors (backing
// off and logging them, rate-limited) and still serves; any other error ends
// it.
func TestServerAcceptRetries(t *testing.T) {
	emfile := &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	enobufs := &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.ENOBUFS)}
	fatal := errors.New("listener broken")
	cases := []struct {
		name      string
		errs      []error
		wantServe bool // the client is served after the errors
	}{
		{"EMFILE burst", []error{emfile, emfile, emfile, emfile, emfile, emfile}, true},
		{"ENOBUFS then EMFILE", []error{enobufs, emfile}, true},
		{"a fatal error ends Serve", []error{emfile, fatal}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			fl := &flakyListener{Listener: ln, errs: tc.errs}
			var logs syncBuffer
			srv := sdk.NewServer(sdk.HandlerFunc(lineEcho), bufferLogger(&logs))
			served := make(chan error, 1)
			go func() { served <- srv.Serve(fl) }()
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				defer cancel()
				srv.Shutdown(ctx)
				recv(t, "Serve to return", served)
			})
			if !tc.wantServe {
				if err := recv(t, "Serve to return", served); !errors.Is(err, fatal) {
					t.Fatalf("Serve: %v, want %v", err, fatal)
				}
				served <- err // for the cleanup
				return
			}
			c := dial(t, ln.Addr().String())
			if got := ask(t, c, bufio.NewReader(c), "after"); got != "echo: after" {
				t.Fatalf("reply %q", got)
			}
			if st := srv.Stats(); st.AcceptErrors != uint64(len(tc.errs)) {
				t.Errorf("Stats.AcceptErrors = %d, want %d", st.AcceptErrors, len(tc.errs))
			}
			out := logs.String()
			warns := strings.Count(out, "accept failed; retrying")
			// Rate-limited: the first error is logged at once; the others
			// come within about 1.3 s of back-off, so at most a few more lines
			// even on a slow machine, and never one per error.
			if warns < 1 || warns > len(tc.errs) {
				t.Errorf("%d accept warnings for %d errors:\n%s", warns, len(tc.errs), out)
			}
			if first := tc.errs[0].Error(); !strings.Contains(out, first) {
				t.Errorf("the first error %q is not logged:\n%s", first, out)
			}
			if len(tc.errs) > 3 && warns == len(tc.errs) {
				t.Errorf("every one of %d errors logged: not rate-limited:\n%s", len(tc.errs), out)
			}
		})
	}
}

// TestServerAcceptEMFILE runs Serve in a child process (this test binary
// again) whose open-file limit is lowered and its descriptors used up, so
// that the real accept4 fails with EMFILE. A client connecting meanwhile
// waits in the backlog and is served once descriptors are free again.
func TestServerAcceptEMFILE(t *testing.T) {
	if os.Getenv(emfileChildEnv) != "" {
		emfileChild()
		return
	}
	if runtime.GOOS != "linux" {
		t.Skip("counts descriptors in /proc/self/fd")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestServerAcceptEMFILE$", "-test.count=1")
	cmd.Env = append(os.Environ(), emfileChildEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-exited:
		case <-time.After(timeout):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	lines := make(chan string, 10)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	next := func(prefix string) string {
		t.Helper()
		for {
			l, ok := <-lines
			if !ok {
				t.Fatalf("child ended before %q; its stderr:\n%s", prefix, stderr.String())
			}
			if rest, found := strings.CutPrefix(l, prefix); found {
				return rest
			}
		}
	}
	addr := next("ready ")

	c := dial(t, addr) // the handshake completes in the kernel's backlog
	if _, err := io.WriteString(c, "waited\n"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the child to log an EMFILE", func() bool { return strings.Contains(stderr.String(), "too many open files") })
	if _, err := io.WriteString(stdin, "release\n"); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	if reply, err := r.ReadString('\n'); err != nil || reply != "echo: waited\n" {
		t.Fatalf("the client that waited: %q, %v; child stderr:\n%s", reply, err, stderr.String())
	}
	c2 := dial(t, addr)
	if got := ask(t, c2, bufio.NewReader(c2), "later"); got != "echo: later" {
		t.Fatalf("a later client: %q", got)
	}
	if _, err := io.WriteString(stdin, "stop\n"); err != nil {
		t.Fatal(err)
	}
	stats := next("stats ")
	var acceptErrors, total int
	if _, err := fmt.Sscanf(stats, "accept_errors=%d total=%d", &acceptErrors, &total); err != nil {
		t.Fatalf("child stats %q: %v", stats, err)
	}
	if acceptErrors < 1 || total != 2 {
		t.Errorf("child: %d accept errors, %d connections; want at least 1 and 2", acceptErrors, total)
	}
	warns := strings.Count(stderr.String(), "accept failed; retrying")
	t.Logf("%d accept errors, %d warnings logged", acceptErrors, warns)
	if warns < 1 || warns > acceptErrors {
		t.Errorf("%d warnings for %d accept errors", warns, acceptErrors)
	}
	if strings.Contains(stderr.String(), "serve returned") {
		t.Errorf("Serve returned in the child:\n%s", stderr.String())
	}
}

const emfileChildEnv = "SOCKPLAY_SDK_TEST_EMFILE_CHILD"

// emfileChild is the child of TestServerAcceptEMFILE. It speaks on stdout
// ("ready ADDR", "stats ...") and takes "release" and "stop" on stdin.
func emfileChild() {
	fail := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, format+"\n", args...)
		os.Exit(3)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail("listen: %v", err)
	}
	srv := sdk.NewServer(sdk.HandlerFunc(lineEcho), bufferLogger(os.Stderr))
	served := make(chan error, 1)

	// Lower the limit to what is open now plus a few, and use those up.
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		fail("%v", err)
	}
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		fail("getrlimit: %v", err)
	}
	low := old
	low.Cur = uint64(len(fds) + 8)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		fail("setrlimit: %v", err)
	}
	var fillers []*os.File
	for range 64 {
		f, err := os.Open(os.DevNull)
		if err != nil {
			break
		}
		fillers = append(fillers, f)
	}
	if _, err := os.Open(os.DevNull); !errors.Is(err, syscall.EMFILE) {
		fail("descriptors not used up: %v", err)
	}
	go func() { served <- srv.Serve(ln) }()
	fmt.Printf("ready %s\n", ln.Addr())

	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		switch sc.Text() {
		case "release":
			for _, f := range fillers {
				f.Close()
			}
			fillers = nil
			_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old)
		case "stop":
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			srv.Shutdown(ctx)
			cancel()
			if err := <-served; !errors.Is(err, sdk.ErrServerClosed) {
				fmt.Fprintf(os.Stderr, "serve returned %v\n", err)
			}
			st := srv.Stats()
			fmt.Printf("stats accept_errors=%d total=%d\n", st.AcceptErrors, st.Total)
			return
		}
	}
	fail("stdin closed before stop")
}

// BenchmarkConnectEchoClose is the data path the lingering close is on: a
// client connects, sends a line, reads the echo, and closes; the handler
// returns on end of file. "linger" is the SDK's close, "close" the plain
// close it replaced, measured in the same run:
//
//	go test -run '^$' -bench ConnectEchoClose -count 6 ./sdk/
func BenchmarkConnectEchoClose(b *testing.B) {
	for _, bc := range []struct {
		name   string
		linger time.Duration
	}{{"linger", sdk.LingerTimeout}, {"close", 0}} {
		b.Run(bc.name, func(b *testing.B) {
			srv := sdk.NewServer(sdk.HandlerFunc(lineEcho), nil)
			sdk.SetLinger(srv, bc.linger, sdk.LingerBytes)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			done := make(chan struct{})
			go func() { defer close(done); _ = srv.Serve(ln) }()
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				defer cancel()
				srv.Shutdown(ctx)
				<-done
			}()
			addr := ln.Addr().String()
			buf := make([]byte, 64)
			b.ResetTimer()
			for b.Loop() {
				c, err := net.DialTimeout("tcp", addr, timeout)
				if err != nil {
					b.Fatal(err)
				}
				_ = c.SetDeadline(time.Now().Add(timeout))
				if _, err := io.WriteString(c, "ping\n"); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadAtLeast(c, buf, len("echo: ping\n")); err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
		})
	}
}
