package config_test

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sockplay/sockplay/host/internal/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParseListen(t *testing.T) {
	cases := []struct {
		name    string
		values  []string
		want    map[string]string
		wantErr string
	}{
		{"none", nil, map[string]string{}, ""},
		{"one", []string{"hello=127.0.0.1:9000"}, map[string]string{"hello": "127.0.0.1:9000"}, ""},
		{"several", []string{"hello=127.0.0.1:1", "chat=127.0.0.1:2"},
			map[string]string{"hello": "127.0.0.1:1", "chat": "127.0.0.1:2"}, ""},
		{"localhost", []string{"hello=localhost:9000"}, map[string]string{"hello": "localhost:9000"}, ""},
		{"any host", []string{"hello=:9000"}, map[string]string{"hello": ":9000"}, ""},
		{"ipv6", []string{"hello=[::1]:9000"}, map[string]string{"hello": "[::1]:9000"}, ""},
		{"ephemeral port", []string{"hello=127.0.0.1:0"}, map[string]string{"hello": "127.0.0.1:0"}, ""},
		{"highest port", []string{"hello=127.0.0.1:65535"}, map[string]string{"hello": "127.0.0.1:65535"}, ""},

		{"no equals", []string{"hello"}, nil, `--listen "hello": want NAME=HOST:PORT`},
		{"no name", []string{"=127.0.0.1:1"}, nil, `--listen "=127.0.0.1:1": want NAME=HOST:PORT`},
		{"missing port", []string{"hello=127.0.0.1"}, nil, `--listen hello=127.0.0.1: address "127.0.0.1": address 127.0.0.1: missing port in address`},
		{"empty port", []string{"hello=127.0.0.1:"}, nil, `--listen hello=127.0.0.1:: address "127.0.0.1:": missing port`},
		{"empty address", []string{"hello="}, nil, `--listen hello=: address "": missing port in address`},
		{"named port", []string{"hello=127.0.0.1:http"}, nil, `address "127.0.0.1:http": port "http" is not a number from 0 to 65535`},
		{"port too big", []string{"hello=127.0.0.1:65536"}, nil, `port "65536" is not a number from 0 to 65535`},
		{"negative port", []string{"hello=127.0.0.1:-1"}, nil, `port "-1" is not a number from 0 to 65535`},
		{"host name", []string{"hello=example.com:80"}, nil, `--listen hello=example.com:80: address "example.com:80": host must be an IP address or localhost`},
		{"ipv6 without brackets", []string{"hello=::1:80"}, nil, `address "::1:80"`},
		{"duplicate", []string{"hello=127.0.0.1:1", "chat=127.0.0.1:2", "hello=127.0.0.1:3"}, nil,
			"--listen hello=127.0.0.1:3: hello is given twice"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := config.ParseListen(tc.values)
			checkErr(t, "ParseListen", err, tc.wantErr)
			if tc.wantErr == "" && !maps.Equal(got, tc.want) {
				t.Fatalf("ParseListen: %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCheckAddr(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:1", "localhost:1", ":1", "[::1]:1", "0.0.0.0:0"} {
		if err := config.CheckAddr(addr); err != nil {
			t.Errorf("CheckAddr(%q): %v", addr, err)
		}
	}
	for _, addr := range []string{"", "127.0.0.1", "127.0.0.1:", "127.0.0.1:x", "127.0.0.1:99999", "host.invalid:1", "LOCALHOST:1"} {
		if err := config.CheckAddr(addr); err == nil {
			t.Errorf("CheckAddr(%q): nil, want an error", addr)
		} else if !strings.Contains(err.Error(), `address "`+addr+`"`) {
			t.Errorf("CheckAddr(%q): %q does not name the address", addr, err)
		}
	}
}

func TestParseSet(t *testing.T) {
	cases := []struct {
		name    string
		values  []string
		want    map[string]map[string]string
		wantErr string
	}{
		{"none", nil, map[string]map[string]string{}, ""},
		{"one", []string{"hello.greeting=hi"}, map[string]map[string]string{"hello": {"greeting": "hi"}}, ""},
		{"several plugins and keys", []string{"hello.greeting=hi", "chat.room=lobby", "hello.times=2"},
			map[string]map[string]string{"hello": {"greeting": "hi", "times": "2"}, "chat": {"room": "lobby"}}, ""},
		{"empty value", []string{"hello.greeting="}, map[string]map[string]string{"hello": {"greeting": ""}}, ""},
		{"value with = and .", []string{"hello.greeting=a=b.c"}, map[string]map[string]string{"hello": {"greeting": "a=b.c"}}, ""},
		{"value with spaces", []string{"hello.greeting= hi there "}, map[string]map[string]string{"hello": {"greeting": " hi there "}}, ""},
		{"later wins", []string{"hello.times=1", "hello.times=2"}, map[string]map[string]string{"hello": {"times": "2"}}, ""},
		// Only the first dot separates: the plugin then refuses the key.
		{"dotted key", []string{"hello.a.b=1"}, map[string]map[string]string{"hello": {"a.b": "1"}}, ""},

		{"no equals", []string{"hello.greeting"}, nil, `--set "hello.greeting": want NAME.KEY=VALUE`},
		{"no dot", []string{"hello=hi"}, nil, `--set "hello=hi": want NAME.KEY=VALUE`},
		{"dot only in value", []string{"hello=a.b"}, nil, `--set "hello=a.b": want NAME.KEY=VALUE`},
		{"no name", []string{".greeting=hi"}, nil, `--set ".greeting=hi": want NAME.KEY=VALUE`},
		{"no key", []string{"hello.=hi"}, nil, `--set "hello.=hi": want NAME.KEY=VALUE`},
		{"empty", []string{""}, nil, `--set "": want NAME.KEY=VALUE`},
		{"bad after good", []string{"hello.a=1", "oops"}, nil, `--set "oops"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := config.ParseSet(tc.values)
			checkErr(t, "ParseSet", err, tc.wantErr)
			if tc.wantErr != "" {
				return
			}
			if len(got) != len(tc.want) {
				t.Fatalf("ParseSet: %v, want %v", got, tc.want)
			}
			for name, opts := range tc.want {
				if !maps.Equal(got[name], opts) {
					t.Fatalf("ParseSet: %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestDefault(t *testing.T) {
	c := config.Default()
	if c.Listen == nil || c.Set == nil {
		t.Fatal("Default: nil Listen or Set map")
	}
	if err := c.Validate(); err == nil || err.Error() != "--plugin-dir is empty" {
		t.Fatalf("Default().Validate(): %v, want only the plugin dir missing", err)
	}
	c.PluginDir = "/nonexistent" // Validate does not look at the disk
	if err := c.Validate(); err != nil {
		t.Fatalf("Default() with a plugin dir: %v", err)
	}
	if !c.Enabled("anything") {
		t.Fatal("Default(): Enabled is false with no --enable")
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name   string
		change func(c *config.Config)
		want   string // "" for valid
	}{
		{"defaults", func(c *config.Config) {}, ""},
		{"zero drain timeout", func(c *config.Config) { c.DrainTimeout = 0 }, ""},
		{"smallest backlog", func(c *config.Config) { c.Backlog = 1 }, ""},
		{"largest backlog", func(c *config.Config) { c.Backlog = 1 << 20 }, ""},
		{"initial equals max backoff", func(c *config.Config) { c.BackoffMax = c.BackoffInitial }, ""},
		{"enable list", func(c *config.Config) { c.Enable = []string{"hello", "chat"} }, ""},
		{"UDP buffers", func(c *config.Config) { c.UDPReadBuffer, c.UDPWriteBuffer = 1<<20, 1<<20 }, ""},

		{"no plugin dir", func(c *config.Config) { c.PluginDir = "" }, "--plugin-dir is empty"},
		{"negative drain timeout", func(c *config.Config) { c.DrainTimeout = -time.Second }, "--drain-timeout -1s is negative"},
		{"zero backlog", func(c *config.Config) { c.Backlog = 0 }, "--backlog 0: want 1 to 1048576"},
		{"backlog too big", func(c *config.Config) { c.Backlog = 1<<20 + 1 }, "--backlog 1048577: want 1 to 1048576"},
		{"negative UDP read buffer", func(c *config.Config) { c.UDPReadBuffer = -1 }, "UDP buffer sizes must not be negative"},
		{"negative UDP write buffer", func(c *config.Config) { c.UDPWriteBuffer = -1 }, "UDP buffer sizes must not be negative"},
		{"zero initial backoff", func(c *config.Config) { c.BackoffInitial, c.BackoffMax = 0, time.Second }, "restart backoff: initial 0s, max 1s: want 0 < initial <= max"},
		{"max below initial", func(c *config.Config) { c.BackoffInitial, c.BackoffMax = 10*time.Millisecond, time.Millisecond }, "restart backoff: initial 10ms, max 1ms"},
		{"zero crash limit", func(c *config.Config) { c.CrashLimit = 0 }, "--crash-limit 0: want at least 1"},
		{"zero crash window", func(c *config.Config) { c.CrashWindow = 0 }, "--crash-window 0s: want a positive duration"},
		{"zero start timeout", func(c *config.Config) { c.StartTimeout = 0 }, "--start-timeout 0s: want a positive duration"},
		{"empty name in enable", func(c *config.Config) { c.Enable = []string{"hello", ""} }, "--enable: empty plugin name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := config.Default()
			c.PluginDir = t.TempDir()
			tc.change(&c)
			checkErr(t, "Validate", c.Validate(), tc.want)
		})
	}
}

func TestDefaultStatusFile(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", "/run/user/1234")
	if got, want := config.DefaultStatusFile(), filepath.Join("/run/user/1234", "sockplay", "status.json"); got != want {
		t.Errorf("with XDG_RUNTIME_DIR: %q, want %q", got, want)
	}
	t.Setenv("XDG_RUNTIME_DIR", "")
	want := filepath.Join(os.TempDir(), fmt.Sprintf("sockplay-%d", os.Getuid()), "status.json")
	if got := config.DefaultStatusFile(); got != want {
		t.Errorf("without XDG_RUNTIME_DIR: %q, want %q", got, want)
	}
}

func TestEnabled(t *testing.T) {
	c := config.Default()
	c.Enable = []string{"hello", "chat"}
	for name, want := range map[string]bool{"hello": true, "chat": true, "echo": false, "": false, "Hello": false} {
		if got := c.Enabled(name); got != want {
			t.Errorf("Enabled(%q) = %v, want %v", name, got, want)
		}
	}
}

// checkErr fails unless err is nil and want is "", or err contains want.
func checkErr(t *testing.T, op string, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("%s: %v, want nil", op, err)
	case want != "" && err == nil:
		t.Fatalf("%s: nil, want an error containing %q", op, want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Fatalf("%s: %q, want it to contain %q", op, err, want)
	}
}

func TestCheckAdmin(t *testing.T) {
	cases := []struct {
		addr, token string
		ok          bool
	}{
		{"127.0.0.1:12380", "", true},
		{"127.0.0.2:0", "", true},
		{"[::1]:0", "", true},
		{"localhost:0", "", true},
		{"off", "", true},
		{"0.0.0.0:12380", "", false},
		{":12380", "", false},
		{"192.0.2.1:12380", "", false},
		{"0.0.0.0:12380", "tok", true},
		{"nonsense", "", false},
		{"127.0.0.1:65536", "", false},
		{"example.com:80", "tok", false},
	}
	for _, c := range cases {
		if err := config.CheckAdmin(c.addr, c.token); (err == nil) != c.ok {
			t.Errorf("CheckAdmin(%q, %q) = %v, want ok %v", c.addr, c.token, err, c.ok)
		}
	}
}
