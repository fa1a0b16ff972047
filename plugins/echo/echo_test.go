package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/sockplay/sockplay/sdk"
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
	code := sdk.RunClient(context.Background(), &p, []string{"connect", in.Addr},
		sdk.Stdio{In: strings.NewReader("one\ntwo\n"), Out: &out, Err: &errb})
	if code != 0 || out.String() != "one\ntwo\n" {
		t.Fatalf("exit %d, out %q, err %q", code, out.String(), errb.String())
	}
	out.Reset()
	errb.Reset()
	if code := sdk.RunClient(context.Background(), &p, []string{"connect", "127.0.0.1:1"},
		sdk.Stdio{In: strings.NewReader(""), Out: &out, Err: &errb}); code != 1 || !strings.Contains(errb.String(), "connection refused") {
		t.Fatalf("refused: exit %d, err %q", code, errb.String())
	}
}
