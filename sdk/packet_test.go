package sdk_test

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sockplay/sockplay/sdk"
	"github.com/sockplay/sockplay/sdk/sdktest"
)

// listenUDP binds a loopback UDP socket; the PacketServer that serves it
// closes it, and so does cleanup in case it was never served.
func listenUDP(t *testing.T) net.PacketConn {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc
}

func dialUDP(t *testing.T, addr net.Addr) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("udp", addr.String(), timeout)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(timeout))
	t.Cleanup(func() { c.Close() })
	return c
}

// servePackets serves pc with h until the test ends.
func servePackets(t *testing.T, h sdk.PacketHandler, pc net.PacketConn) *sdk.PacketServer {
	t.Helper()
	srv := sdk.NewPacketServer(h, sdktest.Logger(t, "demo"))
	served := goServe(srv, pc)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := recv(t, "Serve to return", served); !errors.Is(err, sdk.ErrServerClosed) {
			t.Errorf("Serve after Shutdown: %v, want ErrServerClosed", err)
		}
	})
	return srv
}

// goServe runs srv.Serve(pc) on a goroutine; its error comes on the channel.
func goServe(srv *sdk.PacketServer, pc net.PacketConn) <-chan error {
	served := make(chan error, 1)
	go func() { served <- srv.Serve(pc) }()
	return served
}

// replyFor is the test's DatagramFunc: "none" gets no reply, "empty" an empty
// datagram, "panic" panics, and anything else "re:" and itself.
func replyFor(_ context.Context, payload []byte, _ net.Addr) []byte {
	switch string(payload) {
	case "none":
		return nil
	case "empty":
		return []byte{}
	case "panic":
		panic("asked to")
	}
	return append([]byte("re:"), payload...)
}

// exchange sends each datagram of send in turn and then reads len(want)
// replies. Every case ends with a datagram that is answered, so a reply that
// should not have been sent shows up in its place.
func exchange(t *testing.T, c net.Conn, send, want []string) {
	t.Helper()
	for _, s := range send {
		if _, err := c.Write([]byte(s)); err != nil {
			t.Fatalf("write %q: %v", s, err)
		}
	}
	buf := make([]byte, 1500)
	for i, w := range want {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("reply %d (want %q): %v", i, w, err)
		}
		if got := string(buf[:n]); got != w {
			t.Fatalf("reply %d: %q, want %q", i, got, w)
		}
	}
}

func TestDatagramFunc(t *testing.T) {
	cases := []struct {
		name       string
		send, want []string
		panics     uint64
	}{
		{"echo", []string{"a", "bc"}, []string{"re:a", "re:bc"}, 0},
		{"empty payload", []string{""}, []string{"re:"}, 0},
		{"nil reply sends nothing", []string{"none", "end"}, []string{"re:end"}, 0},
		{"empty reply sends an empty datagram", []string{"empty", "end"}, []string{"", "re:end"}, 0},
		{"panic loses one datagram", []string{"panic", "end"}, []string{"re:end"}, 0},
		{"panics again and again", []string{"panic", "panic", "x", "panic", "end"}, []string{"re:x", "re:end"}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pc := listenUDP(t)
			srv := servePackets(t, sdk.DatagramFunc(replyFor), pc)
			exchange(t, dialUDP(t, pc.LocalAddr()), tc.send, tc.want)
			// DatagramFunc recovers its own panics: the PacketHandler
			// never panicked.
			if got := srv.Stats().Panics; got != tc.panics {
				t.Fatalf("Stats().Panics = %d, want %d", got, tc.panics)
			}
		})
	}
}

func TestPacketHandlerPanicRestarts(t *testing.T) {
	var runs atomic.Int32
	h := sdk.PacketHandlerFunc(func(ctx context.Context, pc net.PacketConn) {
		if runs.Add(1) == 1 {
			panic("at start")
		}
		buf := make([]byte, 1500)
		for ctx.Err() == nil {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if string(buf[:n]) == "crash" {
				panic("asked to")
			}
			_, _ = pc.WriteTo(append([]byte("re:"), buf[:n]...), from)
		}
	})
	pc := listenUDP(t)
	srv := servePackets(t, h, pc)
	c := dialUDP(t, pc.LocalAddr())
	exchange(t, c, []string{"a"}, []string{"re:a"})
	// The datagram after the crash waits in the socket for the restarted
	// handler.
	exchange(t, c, []string{"crash", "b"}, []string{"re:b"})
	if got := srv.Stats().Panics; got != 2 {
		t.Errorf("Stats().Panics = %d, want 2", got)
	}
	if got := runs.Load(); got != 3 {
		t.Errorf("handler ran %d times, want 3", got)
	}
}

func TestPacketServerShutdown(t *testing.T) {
	t.Run("handler returns", func(t *testing.T) {
		pc := listenUDP(t)
		srv := sdk.NewPacketServer(sdk.DatagramFunc(replyFor), nil)
		served := goServe(srv, pc)
		exchange(t, dialUDP(t, pc.LocalAddr()), []string{"x"}, []string{"re:x"})
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		start := time.Now()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v, want nil", err)
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("Shutdown took %s", took)
		}
		if err := recv(t, "Serve to return", served); !errors.Is(err, sdk.ErrServerClosed) {
			t.Errorf("Serve: %v, want ErrServerClosed", err)
		}
		if st := srv.Stats(); st.Forced != 0 || st.Active != 0 || st.Total != 1 {
			t.Errorf("Stats after Shutdown: %+v, want Forced 0, Active 0, Total 1", st)
		}
		if _, err := pc.WriteTo([]byte("x"), pc.LocalAddr()); !errors.Is(err, net.ErrClosed) {
			t.Errorf("socket after Shutdown: write: %v, want net.ErrClosed", err)
		}
	})

	t.Run("stubborn handler", func(t *testing.T) {
		quick, slow := listenUDP(t), listenUDP(t)
		srv, started, quickServed, slowServed := serveStubborn(t, quick, slow)
		recv(t, "handler on slow", started)
		if err := recv(t, "Serve(quick) to return", quickServed); err != nil {
			t.Errorf("Serve(quick), whose handler returned by itself: %v, want nil", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Shutdown: %v, want context.DeadlineExceeded", err)
		}
		if st := srv.Stats(); st.Forced != 1 {
			t.Errorf("Stats().Forced = %d, want 1 (only the handler on slow was still running)", st.Forced)
		}
		if err := recv(t, "Serve(slow) to return", slowServed); !errors.Is(err, sdk.ErrServerClosed) {
			t.Errorf("Serve(slow): %v, want ErrServerClosed", err)
		}
		if _, err := slow.WriteTo([]byte("x"), slow.LocalAddr()); !errors.Is(err, net.ErrClosed) {
			t.Errorf("socket after Shutdown: write: %v, want net.ErrClosed", err)
		}
	})

	t.Run("serve after shutdown", func(t *testing.T) {
		var ran atomic.Bool
		srv := sdk.NewPacketServer(sdk.PacketHandlerFunc(func(context.Context, net.PacketConn) { ran.Store(true) }), nil)
		if err := srv.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown of an idle server: %v", err)
		}
		pc := listenUDP(t)
		if err := srv.Serve(pc); !errors.Is(err, sdk.ErrServerClosed) {
			t.Errorf("Serve after Shutdown: %v, want ErrServerClosed", err)
		}
		if _, err := pc.WriteTo([]byte("x"), pc.LocalAddr()); !errors.Is(err, net.ErrClosed) {
			t.Errorf("socket served after Shutdown: write: %v, want net.ErrClosed", err)
		}
		if ran.Load() {
			t.Error("handler ran after Shutdown")
		}
	})

	t.Run("handler ctx cancelled", func(t *testing.T) {
		pc := listenUDP(t)
		started := make(chan struct{})
		got := make(chan error, 1)
		srv := sdk.NewPacketServer(sdk.PacketHandlerFunc(func(ctx context.Context, pc net.PacketConn) {
			close(started)
			<-ctx.Done()
			got <- ctx.Err()
		}), nil)
		served := goServe(srv, pc)
		recv(t, "the handler to start", started)
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v, want nil", err)
		}
		if err := recv(t, "the handler", got); !errors.Is(err, context.Canceled) {
			t.Errorf("handler ctx: %v, want context.Canceled", err)
		}
		if err := recv(t, "Serve to return", served); !errors.Is(err, sdk.ErrServerClosed) {
			t.Errorf("Serve: %v, want ErrServerClosed", err)
		}
	})
}

// Close closes the sockets at once, without waiting for a handler that
// ignores its context; Serve returns once that handler sees its socket
// closed.
func TestPacketServerClose(t *testing.T) {
	quick, slow := listenUDP(t), listenUDP(t)
	srv, started, quickServed, slowServed := serveStubborn(t, quick, slow)
	recv(t, "handler on slow", started)
	recv(t, "Serve(quick) to return", quickServed)
	if err := srv.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := recv(t, "Serve(slow) to return", slowServed); !errors.Is(err, sdk.ErrServerClosed) {
		t.Errorf("Serve(slow) after Close: %v, want ErrServerClosed", err)
	}
	if _, err := slow.WriteTo([]byte("x"), slow.LocalAddr()); !errors.Is(err, net.ErrClosed) {
		t.Errorf("socket after Close: write: %v, want net.ErrClosed", err)
	}
	_ = srv.Close()
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown after Close: %v, want nil", err)
	}
	if st := srv.Stats(); st.Forced != 1 || st.Active != 0 {
		t.Errorf("Stats after Close: %+v, want Forced 1 (counted once), Active 0", st)
	}
}

// serveStubborn serves quick and slow with a handler that returns at once
// on quick; on slow it signals started, ignores ctx and undoes the deadline
// Shutdown sets, until the socket is closed.
func serveStubborn(t *testing.T, quick, slow net.PacketConn) (srv *sdk.PacketServer, started chan struct{}, quickServed, slowServed <-chan error) {
	started = make(chan struct{}, 1)
	h := sdk.PacketHandlerFunc(func(ctx context.Context, pc net.PacketConn) {
		if pc == quick {
			return
		}
		started <- struct{}{}
		buf := make([]byte, 64)
		for range 1000 {
			_ = pc.SetReadDeadline(time.Now().Add(timeout))
			if _, _, err := pc.ReadFrom(buf); errors.Is(err, net.ErrClosed) {
				return
			}
		}
	})
	srv = sdk.NewPacketServer(h, sdktest.Logger(t, "demo"))
	return srv, started, goServe(srv, quick), goServe(srv, slow)
}
