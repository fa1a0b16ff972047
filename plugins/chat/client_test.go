//go:build unix

package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sockplay/sockplay/sdk/client"
)

// lineSink is a client's stdout, read line by line by the test.
type lineSink struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	lines chan string
}

func newSink() *lineSink { return &lineSink{lines: make(chan string, 1024)} }

func (s *lineSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.Write(p)
	for {
		l, err := s.buf.ReadString('\n')
		if err != nil {
			s.buf.WriteString(l) // keep the unfinished line
			break
		}
		s.lines <- strings.TrimSuffix(l, "\n")
	}
	return len(p), nil
}

// expect waits for a printed line containing want.
func (s *lineSink) expect(t *testing.T, want string) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case l := <-s.lines:
			if strings.Contains(l, want) {
				return
			}
		case <-timeout:
			t.Fatalf("the client did not print %q", want)
		}
	}
}

// runClient runs `sockplay-chat args...` in-process; the returned channel
// yields its exit status.
func runClient(t *testing.T, args []string, in io.Reader, out, errOut io.Writer) <-chan int {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	p := Plugin()
	code := make(chan int, 1)
	go func() { code <- client.Run(ctx, p.Client(), args, client.Stdio{In: in, Out: out, Err: errOut}) }()
	return code
}

func wait(t *testing.T, code <-chan int) int {
	t.Helper()
	select {
	case c := <-code:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("the client did not exit")
		return -1
	}
}

func TestClient(t *testing.T) {
	t.Run("chat, then end of stdin", func(t *testing.T) {
		in := start(t, nil)
		y := named(t, in, "y")
		stdin, typing := io.Pipe()
		out := newSink()
		var errOut bytes.Buffer
		code := runClient(t, []string{"connect", in.Addr, "--nick", "alice"}, stdin, out, &errOut)

		out.expect(t, "*** guest2 is now known as alice")
		out.expect(t, "*** welcome to lobby, alice")
		out.expect(t, "*** 2 here: alice, y")
		y.expect("is now known as alice")
		// Receiving while stdin is idle: other people's lines appear.
		y.send("hi \x1b[1malice")
		out.expect(t, "y: hi ^[[1malice")
		if _, err := io.WriteString(typing, "hello y\n\n"); err != nil {
			t.Fatal(err)
		}
		y.expect("alice: hello y")
		typing.Close()
		y.expect("*** alice left")
		if c := wait(t, code); c != 0 {
			t.Errorf("exit status %d, stderr %q", c, errOut.String())
		}
	})

	t.Run("/quit", func(t *testing.T) {
		in := start(t, nil)
		out := newSink()
		code := runClient(t, []string{"connect", in.Addr}, strings.NewReader("hi\n/quit\nnot sent\n"), out, io.Discard)
		out.expect(t, "guest1: hi")
		out.expect(t, "*** bye")
		if c := wait(t, code); c != 0 {
			t.Errorf("exit status %d", c)
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		in := start(t, nil)
		stdin, typing := io.Pipe()
		defer typing.Close()
		out := newSink()
		ctx, cancel := context.WithCancel(context.Background())
		p := Plugin()
		code := make(chan int, 1)
		go func() {
			code <- client.Run(ctx, p.Client(), []string{"connect", in.Addr}, client.Stdio{In: stdin, Out: out, Err: io.Discard})
		}()
		out.expect(t, "welcome")
		cancel() // as on SIGINT
		if c := wait(t, code); c != 0 {
			t.Errorf("exit status %d", c)
		}
	})

	usage := []struct {
		name string
		args []string
		want int
		err  string
	}{
		{"no command", []string{}, 2, "Usage"},
		{"unknown command", []string{"join"}, 2, `unknown command "join"`},
		{"two addresses", []string{"connect", "a:1", "b:2"}, 2, "unexpected argument"},
		{"nick without name", []string{"connect", "--nick"}, 2, "flag needs an argument: --nick"},
		{"bad nick", []string{"connect", "--nick=9x"}, 2, "invalid nick"},
		{"unknown flag", []string{"connect", "--verbose"}, 2, "unknown flag: --verbose"},
		{"refused", []string{"connect", "127.0.0.1:1"}, 1, "refused"},
	}
	for _, tt := range usage {
		t.Run(tt.name, func(t *testing.T) {
			var errOut bytes.Buffer
			code := runClient(t, tt.args, strings.NewReader(""), io.Discard, &errOut)
			if c := wait(t, code); c != tt.want || !strings.Contains(errOut.String(), tt.err) {
				t.Errorf("status %d, stderr %q; want %d and %q", c, errOut.String(), tt.want, tt.err)
			}
		})
	}

	t.Run("help lists the options", func(t *testing.T) {
		var out bytes.Buffer
		code := runClient(t, []string{"--help"}, strings.NewReader(""), &out, io.Discard)
		if c := wait(t, code); c != 0 || !strings.Contains(out.String(), "linewait") {
			t.Errorf("status %d, help %q", c, out.String())
		}
		out.Reset()
		code = runClient(t, []string{"connect", "--help"}, strings.NewReader(""), &out, io.Discard)
		if c := wait(t, code); c != 0 || !strings.Contains(out.String(), "connect [ADDR] [flags]") ||
			!strings.Contains(out.String(), "--nick NAME") {
			t.Errorf("status %d, help %q", c, out.String())
		}
	})
}
