package sdktest_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sockplay/sockplay/sdk"
	"github.com/sockplay/sockplay/sdk/sdktest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const timeout = 5 * time.Second

// upper is a tiny TCP plugin: each line comes back upper-cased after a
// prefix, at most limit lines per connection (0: no limit).
func upper() sdk.Plugin {
	return sdk.Plugin{
		Name:        "upper",
		Version:     "0.1.0",
		DefaultAddr: "127.0.0.1:12390",
		Options: []sdk.Option{
			{Name: "prefix", Default: "> ", Help: "what each reply starts with"},
			{Name: "limit", Default: "0", Help: "lines per connection, 0 for no limit"},
		},
		TCP: func(cfg sdk.Config) (sdk.Handler, error) {
			limit, err := cfg.Int("limit")
			if err != nil {
				return nil, err
			}
			if limit < 0 {
				return nil, fmt.Errorf("option upper.limit=%d: want 0 or more", limit)
			}
			prefix := cfg.String("prefix")
			return sdk.HandlerFunc(func(ctx context.Context, c net.Conn) {
				stop := context.AfterFunc(ctx, func() { _ = c.SetReadDeadline(time.Now()) })
				defer stop()
				sc := bufio.NewScanner(c)
				for n := 1; sc.Scan(); n++ {
					if _, err := io.WriteString(c, prefix+strings.ToUpper(sc.Text())+"\n"); err != nil || n == limit {
						return
					}
				}
			}), nil
		},
	}
}

// reverse is a tiny UDP plugin: each datagram comes back reversed.
func reverse() sdk.Plugin {
	return sdk.Plugin{
		Name:        "reverse",
		Version:     "0.1.0",
		DefaultAddr: "127.0.0.1:12391",
		UDP: func(sdk.Config) (sdk.PacketHandler, error) {
			return sdk.DatagramFunc(func(_ context.Context, p []byte, _ net.Addr) []byte {
				out := make([]byte, len(p))
				for i, b := range p {
					out[len(p)-1-i] = b
				}
				return out
			}), nil
		},
	}
}

func TestStartTCP(t *testing.T) {
	cases := []struct {
		name    string
		options map[string]string
		send    string
		want    string
	}{
		{"defaults", nil, "hi\nthere\n", "> HI\n> THERE\n"},
		{"prefix", map[string]string{"prefix": "# "}, "hi\n", "# HI\n"},
		{"limit closes after n lines", map[string]string{"limit": "1"}, "a\nb\n", "> A\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := sdktest.Start(t, upper(), tc.options)
			if in.Server == nil || in.PacketServer != nil {
				t.Fatalf("TCP plugin: Server %v, PacketServer %v", in.Server, in.PacketServer)
			}
			if host, _, err := net.SplitHostPort(in.Addr); err != nil || host != "127.0.0.1" {
				t.Fatalf("Addr %q: want 127.0.0.1:PORT", in.Addr)
			}
			c := in.Dial(t)
			if _, err := io.WriteString(c, tc.send); err != nil {
				t.Fatal(err)
			}
			// The plugin closes after its replies here (limit) or we stop
			// reading after as many bytes as we expect.
			got := make([]byte, len(tc.want))
			if _, err := io.ReadFull(c, got); err != nil {
				t.Fatalf("read %d bytes: %v (got %q)", len(tc.want), err, got)
			}
			if string(got) != tc.want {
				t.Fatalf("reply %q, want %q", got, tc.want)
			}
		})
	}
}

func TestStartConfig(t *testing.T) {
	in := sdktest.Start(t, upper(), map[string]string{"limit": "7"})
	if got := in.Config.String("prefix"); got != "> " {
		t.Errorf(`Config.String("prefix") = %q, want the default "> "`, got)
	}
	if got, err := in.Config.Int("limit"); got != 7 || err != nil {
		t.Errorf(`Config.Int("limit") = %d, %v; want 7`, got, err)
	}
}

func TestStartUDP(t *testing.T) {
	in := sdktest.Start(t, reverse(), nil)
	if in.PacketServer == nil || in.Server != nil {
		t.Fatalf("UDP plugin: Server %v, PacketServer %v", in.Server, in.PacketServer)
	}
	c := in.DialUDP(t)
	for _, msg := range []string{"abc", "sockplay", ""} {
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("reply to %q: %v", msg, err)
		}
		want := []byte(msg)
		for i, j := 0, len(want)-1; i < j; i, j = i+1, j-1 {
			want[i], want[j] = want[j], want[i]
		}
		if !bytes.Equal(buf[:n], want) {
			t.Fatalf("reply to %q: %q, want %q", msg, buf[:n], want)
		}
	}
}

// TestCleanupStops checks that what Start serves stops with the test: the
// listener is closed and the open connection with it.
func TestCleanupStops(t *testing.T) {
	var addr string
	var c net.Conn
	t.Run("serve", func(t *testing.T) {
		in := sdktest.Start(t, upper(), nil)
		addr = in.Addr
		var err error
		// Dialled outside Instance.Dial, so that this conn outlives the
		// subtest's cleanup.
		c, err = net.DialTimeout("tcp", addr, timeout)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(timeout))
		if _, err := io.WriteString(c, "x\n"); err != nil {
			t.Fatal(err)
		}
		if got, err := bufio.NewReader(c).ReadString('\n'); got != "> X\n" || err != nil {
			t.Fatalf("reply %q, %v", got, err)
		}
	})
	if c == nil {
		t.FailNow()
	}
	defer c.Close()
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("conn after the test's cleanup: read %d, %v; want io.EOF", n, err)
	}
	if c2, err := net.DialTimeout("tcp", addr, timeout); err == nil {
		c2.Close()
		t.Errorf("dial %s after the test's cleanup: connected", addr)
	}
}

func TestConfigure(t *testing.T) {
	cases := []struct {
		name    string
		plugin  sdk.Plugin
		options map[string]string
		want    string // "" for no error
	}{
		{"defaults", upper(), nil, ""},
		{"good options", upper(), map[string]string{"prefix": "", "limit": "3"}, ""},
		{"unknown option", upper(), map[string]string{"colour": "red"},
			`upper has no option "colour" (options: prefix, limit)`},
		{"not an integer", upper(), map[string]string{"limit": "lots"},
			`option upper.limit="lots": want an integer`},
		{"refused by the constructor", upper(), map[string]string{"limit": "-1"},
			"option upper.limit=-1: want 0 or more"},
		{"udp plugin", reverse(), nil, ""},
		{"udp plugin unknown option", reverse(), map[string]string{"x": "1"},
			`reverse has no option "x" (options: none)`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := sdktest.Configure(t, tc.plugin, tc.options)
			if got := errString(err); got != tc.want {
				t.Fatalf("Configure: %q, want %q", got, tc.want)
			}
		})
	}
}

// fatalTB records what Start reports instead of failing the test, and ends
// the calling goroutine as t.Fatal does.
type fatalTB struct {
	testing.TB // the real test, for everything not overridden
	mu         sync.Mutex
	fatal      string
}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.fatal = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func TestStartFails(t *testing.T) {
	bad := upper()
	bad.Version = "one"
	cases := []struct {
		name    string
		plugin  sdk.Plugin
		options map[string]string
		want    string
	}{
		{"invalid plugin", bad, nil, `sdktest: plugin upper: version "one" is not a semantic version`},
		{"unknown option", upper(), map[string]string{"colour": "red"}, `sdktest: upper has no option "colour"`},
		{"constructor error", upper(), map[string]string{"limit": "-2"}, "sdktest: option upper.limit=-2: want 0 or more"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tb := &fatalTB{TB: t}
			done := make(chan *sdktest.Instance, 1)
			go func() {
				defer close(done)
				done <- sdktest.Start(tb, tc.plugin, tc.options)
			}()
			var in *sdktest.Instance
			select {
			case in = <-done:
			case <-time.After(timeout):
				t.Fatal("Start did not return")
			}
			tb.mu.Lock()
			defer tb.mu.Unlock()
			if in != nil {
				t.Fatalf("Start returned an instance on %s", in.Addr)
			}
			if !strings.HasPrefix(tb.fatal, tc.want) {
				t.Fatalf("Start: Fatalf(%q), want it to start with %q", tb.fatal, tc.want)
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
