package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/sockplay/sockplay/sdk/client"
	"github.com/sockplay/sockplay/sdk/sdktest"
)

func TestGreeting(t *testing.T) {
	for _, tc := range []struct {
		name    string
		options map[string]string
		want    string
	}{
		{"tutorial's", nil, "成功连接到服务器 socket message"},
		{"configured", map[string]string{"greeting": "welcome"}, "welcome"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := sdktest.Start(t, Plugin(), tc.options)
			// As the tutorial's client: one recv of at most 1024 bytes.
			c := in.Dial(t)
			buf := make([]byte, 1024)
			n, err := c.Read(buf)
			if err != nil || string(buf[:n]) != tc.want {
				t.Fatalf("recv: %q, %v; want %q", buf[:n], err, tc.want)
			}
			if rest, err := io.ReadAll(c); err != nil || len(rest) != 0 {
				t.Fatalf("after the greeting: %q, %v; want the server to close", rest, err)
			}
		})
	}
}

func TestClient(t *testing.T) {
	in := sdktest.Start(t, Plugin(), nil)
	p := Plugin()
	var out, errb bytes.Buffer
	code := client.Run(context.Background(), p.Client(), []string{"connect", in.Addr}, client.Stdio{In: strings.NewReader(""), Out: &out, Err: &errb})
	if code != 0 || out.String() != "成功连接到服务器 socket message\n" {
		t.Fatalf("exit %d, out %q, err %q", code, out.String(), errb.String())
	}
	if code := client.Run(context.Background(), p.Client(), []string{"connect", "a", "b"}, client.Stdio{In: strings.NewReader(""), Out: &out, Err: &errb}); code != 2 {
		t.Fatalf("bad arguments: exit %d, want 2", code)
	}
}

// TestSpeakFirstClient: a client that sends before it reads (a probe, a
// health checker) gets the greeting and then end of file, never a reset,
// although the handler reads nothing: the SDK's lingering close drains it.
func TestSpeakFirstClient(t *testing.T) {
	in := sdktest.Start(t, Plugin(), nil)
	for i := range 5 {
		c := in.Dial(t)
		if _, err := io.WriteString(c, "hello server\r\n"); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(c)
		if err != nil || string(got) != DefaultGreeting {
			t.Fatalf("connection %d: %q, %v; want the greeting and end of file", i, got, err)
		}
		c.Close()
	}
}

// TestClientEscapesServerText: a greeting holding terminal escapes, a CR,
// bidi overrides and bytes that are not UTF-8 is printed escaped (its line
// ends kept); the tutorial's greeting is printed as it is (TestClient).
func TestClientEscapesServerText(t *testing.T) {
	in := sdktest.Start(t, Plugin(), map[string]string{"greeting": "hi\x1b]0;owned\x07\x1b[2J\r\nfake prompt$ \u202eevil\xff"})
	p := Plugin()
	var out, errb bytes.Buffer
	code := client.Run(context.Background(), p.Client(), []string{"connect", in.Addr}, client.Stdio{In: strings.NewReader(""), Out: &out, Err: &errb})
	want := `hi\x1b]0;owned\x07\x1b[2J\r` + "\n" + `fake prompt$ \u202eevil\xff` + "\n"
	if code != 0 || out.String() != want {
		t.Fatalf("exit %d, out %q, err %q; want %q", code, out.String(), errb.String(), want)
	}
}
