package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/sockplay/sockplay/sdk/client"
	"github.com/sockplay/sockplay/sdk/sdktest"
)

func TestEcho(t *testing.T) {
	in := sdktest.Start(t, Plugin(), nil)
	cases := []struct {
		name string
		send []byte
	}{
		{"text", []byte("hello\n")},
		{"no newline", []byte("你好")},
		{"binary with NUL and invalid UTF-8", []byte{0, 0xff, 0xfe, 'q', 0xc3}},
		{"quit inside a longer message is echoed", []byte("quitting\n")},
		{"one megabyte", bytes.Repeat([]byte("0123456789abcdef"), 1<<16)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := in.Dial(t)
			var wg sync.WaitGroup
			wg.Go(func() { _, _ = c.Write(tc.send) }) // written while read, as a bulk client does
			got := make([]byte, len(tc.send))
			if _, err := io.ReadFull(c, got); err != nil {
				t.Fatal(err)
			}
			wg.Wait()
			if !bytes.Equal(got, tc.send) {
				t.Fatalf("echoed %d bytes that differ from the %d sent", len(got), len(tc.send))
			}
		})
	}
}

// The tutorial's server closes a client on "quit" or on an empty read.
func TestQuitAndEOFClose(t *testing.T) {
	in := sdktest.Start(t, Plugin(), nil)
	for _, quit := range []string{"quit", "quit\n", "quit\r\n"} {
		c := in.Dial(t)
		if _, err := c.Write([]byte(quit)); err != nil {
			t.Fatal(err)
		}
		if b, err := io.ReadAll(c); err != nil || len(b) != 0 {
			t.Errorf("%q: read %q, %v; want EOF and nothing echoed", quit, b, err)
		}
	}
	c := in.Dial(t)
	_ = c.(interface{ CloseWrite() error }).CloseWrite()
	if b, err := io.ReadAll(c); err != nil || len(b) != 0 {
		t.Errorf("after EOF: %q, %v", b, err)
	}
}

func TestClient(t *testing.T) {
	in := sdktest.Start(t, Plugin(), nil)
	p := Plugin()
	var out, errb bytes.Buffer
	code := client.Run(context.Background(), p.Client(), []string{"connect", in.Addr},
		client.Stdio{In: strings.NewReader("one\ntwo\n"), Out: &out, Err: &errb})
	if code != 0 || out.String() != "one\ntwo\n" {
		t.Fatalf("exit %d, out %q, err %q", code, out.String(), errb.String())
	}
	out.Reset()
	errb.Reset()
	if code := client.Run(context.Background(), p.Client(), []string{"connect", "127.0.0.1:1"},
		client.Stdio{In: strings.NewReader(""), Out: &out, Err: &errb}); code != 1 || !strings.Contains(errb.String(), "connection refused") {
		t.Fatalf("refused: exit %d, err %q", code, errb.String())
	}
}

// A bulk transfer (a read that fills the first buffer) goes back by splice on
// Linux; chunks stay the unit of the protocol: after it, a short message is
// echoed and a quit closes the connection without an echo.
func TestBulkThenChunks(t *testing.T) {
	in := sdktest.Start(t, Plugin(), nil)
	before := spliced.Load()
	c := in.Dial(t)
	r := bufio.NewReader(c)
	for i, size := range []int{smallSize, 3 << 20, 1, smallSize + 1, 7} {
		msg := bytes.Repeat([]byte{byte('a' + i)}, size)
		var wg sync.WaitGroup
		wg.Go(func() { _, _ = c.Write(msg) })
		got := make([]byte, size)
		if _, err := io.ReadFull(r, got); err != nil {
			t.Fatalf("message %d, %d bytes: %v", i, size, err)
		}
		wg.Wait()
		if !bytes.Equal(got, msg) {
			t.Fatalf("message %d, %d bytes: the echo differs", i, size)
		}
	}
	// A lone "hi" must come back before quit is sent, so that the two are
	// separate chunks.
	if _, err := c.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 2)
	if _, err := io.ReadFull(r, got); err != nil || string(got) != "hi" {
		t.Fatalf("after the bulk: %q, %v", got, err)
	}
	if _, err := c.Write([]byte("quit\n")); err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(r); err != nil || len(b) != 0 {
		t.Fatalf("after quit: read %q, %v; want EOF and nothing echoed", b, err)
	}
	if runtime.GOOS == "linux" && spliced.Load() == before {
		t.Error("the bulk transfer was not echoed with splice")
	}
}

// countedConn is a connection wrapped as the SDK's rules wrap one (for
// max-per-source): not a *net.TCPConn, but it gives its socket.
type countedConn struct{ *net.TCPConn }

// hiddenConn hides its socket, as trace mode's wrapper does (it must see
// every byte).
type hiddenConn struct{ net.Conn }

// A wrapped connection is spliced when it gives its socket and copied
// through the buffer when it hides it; both echo every byte.
func TestBulkThroughWrappers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		wrap   func(*net.TCPConn) net.Conn
		splice bool
	}{
		{"gives its socket", func(c *net.TCPConn) net.Conn { return countedConn{c} }, runtime.GOOS == "linux"},
		{"hides its socket", func(c *net.TCPConn) net.Conn { return hiddenConn{c} }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			done := make(chan struct{})
			go func() {
				defer close(done)
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				serve(context.Background(), tc.wrap(c.(*net.TCPConn)))
			}()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			before := spliced.Load()
			msg := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB: a bulk transfer
			var wg sync.WaitGroup
			wg.Go(func() { _, _ = c.Write(msg) })
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(c, got); err != nil {
				t.Fatal(err)
			}
			wg.Wait()
			if !bytes.Equal(got, msg) {
				t.Fatal("the echo differs")
			}
			c.Close()
			<-done
			if did := spliced.Load() != before; did != tc.splice {
				t.Fatalf("spliced = %v, want %v", did, tc.splice)
			}
		})
	}
}
