package sdk_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sockplay/sockplay/sdk"
	"github.com/sockplay/sockplay/sdk/client"
)

// demo is a valid TCP plugin the tests change one field at a time.
func demo() sdk.Plugin {
	return sdk.Plugin{
		Name:        "demo",
		Version:     "1.2.3",
		Summary:     "a plugin for the SDK's tests",
		DefaultAddr: "127.0.0.1:12399",
		Options: []sdk.Option{
			{Name: "prefix", Default: "> ", Help: "what each reply starts with"},
			{Name: "count", Default: "3", Help: "how many"},
			{Name: "loud", Default: "no", Help: "shout"},
			{Name: "wait", Default: "250ms", Help: "how long"},
		},
		TCP: func(sdk.Config) (sdk.Handler, error) {
			return sdk.HandlerFunc(func(context.Context, net.Conn) {}), nil
		},
		Commands: []client.Command{
			{Name: "connect", Args: "[ADDR]", MaxArgs: 1, Summary: "talk to the demo server"},
			{Name: "ping", Args: "ADDR", MinArgs: 1, MaxArgs: 1, Summary: "ping it"},
		},
	}
}

func TestValidate(t *testing.T) {
	udpHandler := func(sdk.Config) (sdk.PacketHandler, error) { return sdk.DatagramFunc(nil), nil }
	cases := []struct {
		name   string
		change func(p *sdk.Plugin)
		want   string // "" for valid
	}{
		{"valid tcp", func(p *sdk.Plugin) {}, ""},
		{"valid udp", func(p *sdk.Plugin) { p.TCP, p.UDP = nil, udpHandler }, ""},
		{"prerelease and build", func(p *sdk.Plugin) { p.Version = "1.0.0-rc.1+git.abc" }, ""},
		{"name with digits and dashes", func(p *sdk.Plugin) { p.Name = "a1-b2" }, ""},
		{"longest name", func(p *sdk.Plugin) { p.Name = "a" + strings.Repeat("b", 31) }, ""},
		{"no options", func(p *sdk.Plugin) { p.Options = nil }, ""},
		{"ipv6 address", func(p *sdk.Plugin) { p.DefaultAddr = "[::1]:9" }, ""},

		{"empty name", func(p *sdk.Plugin) { p.Name = "" }, `plugin name "": want lower case`},
		{"upper case name", func(p *sdk.Plugin) { p.Name = "Demo" }, `plugin name "Demo"`},
		{"bad command name", func(p *sdk.Plugin) { p.Commands[0].Name = "Connect" }, `command name "Connect"`},
		{"reserved command name", func(p *sdk.Plugin) { p.Commands[0].Name = "version" }, `command name "version"`},
		{"repeated command", func(p *sdk.Plugin) { p.Commands[1].Name = "connect" }, `command name "connect"`},
		{"name starts with digit", func(p *sdk.Plugin) { p.Name = "1demo" }, `plugin name "1demo"`},
		{"name with underscore", func(p *sdk.Plugin) { p.Name = "de_mo" }, `plugin name "de_mo"`},
		{"name too long", func(p *sdk.Plugin) { p.Name = "a" + strings.Repeat("b", 32) }, "plugin name"},
		{"version without patch", func(p *sdk.Plugin) { p.Version = "1.2" }, `plugin demo: version "1.2" is not a semantic version`},
		{"version with v", func(p *sdk.Plugin) { p.Version = "v1.2.3" }, `version "v1.2.3" is not a semantic version`},
		{"empty version", func(p *sdk.Plugin) { p.Version = "" }, `version "" is not a semantic version`},
		{"no handler", func(p *sdk.Plugin) { p.TCP = nil }, "plugin demo: no handler: set TCP for a TCP plugin or UDP for a UDP plugin"},
		{"both handlers", func(p *sdk.Plugin) { p.UDP = udpHandler }, "plugin demo: both TCP and UDP are set: a plugin serves one transport"},
		{"address without port", func(p *sdk.Plugin) { p.DefaultAddr = "127.0.0.1" }, "plugin demo: default address: address 127.0.0.1: missing port"},
		{"empty address", func(p *sdk.Plugin) { p.DefaultAddr = "" }, "plugin demo: default address:"},
		{"duplicate option", func(p *sdk.Plugin) { p.Options = append(p.Options, sdk.Option{Name: "count"}) }, `plugin demo: option name "count" is invalid or repeated`},
		{"bad option name", func(p *sdk.Plugin) { p.Options = append(p.Options, sdk.Option{Name: "Bad"}) }, `option name "Bad" is invalid or repeated`},
		{"empty option name", func(p *sdk.Plugin) { p.Options = append(p.Options, sdk.Option{}) }, `option name "" is invalid`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := demo()
			tc.change(&p)
			err := p.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate: %v, want nil", err)
			case tc.want != "" && err == nil:
				t.Fatalf("Validate: nil, want an error containing %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("Validate: %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestConfig(t *testing.T) {
	cases := []struct {
		name    string
		options []sdk.Option // nil: demo's
		values  map[string]string
		want    map[string]string // option values; nil when an error is expected
		wantErr string
	}{
		{name: "defaults", values: nil,
			want: map[string]string{"prefix": "> ", "count": "3", "loud": "no", "wait": "250ms"}},
		{name: "override one", values: map[string]string{"count": "9"},
			want: map[string]string{"prefix": "> ", "count": "9", "loud": "no", "wait": "250ms"}},
		{name: "override to empty", values: map[string]string{"prefix": ""},
			want: map[string]string{"prefix": "", "count": "3"}},
		{name: "unknown option", values: map[string]string{"colour": "red"},
			wantErr: `demo has no option "colour" (options: prefix, count, loud, wait)`},
		{name: "first unknown in sorted order", values: map[string]string{"zeta": "1", "alpha": "2", "count": "4"},
			wantErr: `demo has no option "alpha" (options: prefix, count, loud, wait)`},
		{name: "plugin without options", options: []sdk.Option{}, values: map[string]string{"x": "1"},
			wantErr: `demo has no option "x" (options: none)`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := demo()
			if tc.options != nil {
				p.Options = tc.options
			}
			cfg, err := p.Config(tc.values, nil)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("Config: %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Config: %v", err)
			}
			for k, v := range tc.want {
				if got := cfg.String(k); got != v {
					t.Errorf("String(%q) = %q, want %q", k, got, v)
				}
			}
			if got := cfg.String("undeclared"); got != "" {
				t.Errorf(`String("undeclared") = %q, want ""`, got)
			}
			if cfg.Logger == nil {
				t.Error("Config with a nil logger: Logger is nil, want a logger that discards")
			}
		})
	}
}

func TestConfigKeepsLogger(t *testing.T) {
	p := demo()
	log := hclog.NewNullLogger()
	cfg, err := p.Config(nil, log)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Logger != log {
		t.Fatal("Config replaced the logger it was given")
	}
}

func TestConfigGetters(t *testing.T) {
	type result struct {
		v   any
		err string
	}
	get := map[string]func(sdk.Config, string) result{
		"Int": func(c sdk.Config, k string) result {
			v, err := c.Int(k)
			return result{v, errString(err)}
		},
		"Bool": func(c sdk.Config, k string) result {
			v, err := c.Bool(k)
			return result{v, errString(err)}
		},
		"Duration": func(c sdk.Config, k string) result {
			v, err := c.Duration(k)
			return result{v, errString(err)}
		},
	}
	cases := []struct {
		getter, option, value string
		want                  result
	}{
		{"Int", "count", "42", result{42, ""}},
		{"Int", "count", " -7 ", result{-7, ""}},
		{"Int", "count", "0", result{0, ""}},
		{"Int", "count", "4x", result{0, `option demo.count="4x": want an integer`}},
		{"Int", "count", "", result{0, `option demo.count="": want an integer`}},
		{"Int", "count", "1.5", result{0, `option demo.count="1.5": want an integer`}},
		{"Bool", "loud", "true", result{true, ""}},
		{"Bool", "loud", "YES", result{true, ""}},
		{"Bool", "loud", " on ", result{true, ""}},
		{"Bool", "loud", "1", result{true, ""}},
		{"Bool", "loud", "t", result{true, ""}},
		{"Bool", "loud", "false", result{false, ""}},
		{"Bool", "loud", "No", result{false, ""}},
		{"Bool", "loud", "off", result{false, ""}},
		{"Bool", "loud", "0", result{false, ""}},
		{"Bool", "loud", "", result{false, ""}},
		{"Bool", "loud", "maybe", result{false, `option demo.loud="maybe": want true or false`}},
		{"Duration", "wait", "250ms", result{250 * time.Millisecond, ""}},
		{"Duration", "wait", " 2s ", result{2 * time.Second, ""}},
		{"Duration", "wait", "1h30m", result{90 * time.Minute, ""}},
		{"Duration", "wait", "5", result{time.Duration(0), `option demo.wait="5": want a duration such as 500ms`}},
		{"Duration", "wait", "", result{time.Duration(0), `option demo.wait="": want a duration such as 500ms`}},
	}
	for _, tc := range cases {
		t.Run(tc.getter+"/"+tc.value, func(t *testing.T) {
			p := demo()
			cfg, err := p.Config(map[string]string{tc.option: tc.value}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := get[tc.getter](cfg, tc.option); got != tc.want {
				t.Fatalf("%s(%q) with %q = %v, %q; want %v, %q", tc.getter, tc.option, tc.value, got.v, got.err, tc.want.v, tc.want.err)
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

// Client describes how the host serves the plugin: its transport follows
// from its handler; a plugin without options lists none.
func TestClientServing(t *testing.T) {
	p := demo()
	p.TCP, p.Options = nil, nil
	p.UDP = func(sdk.Config) (sdk.PacketHandler, error) { return sdk.DatagramFunc(nil), nil }
	prog := p.Client()
	want := "Served by the host (sockplay serve --enable demo) on UDP 127.0.0.1:12399 by default."
	if prog.Serving != want {
		t.Errorf("Serving = %q, want %q", prog.Serving, want)
	}
	if prog.Name != "demo" || prog.Version != "1.2.3" || len(prog.Commands) != 2 {
		t.Errorf("Client() = %+v, want demo 1.2.3 with its two commands", prog)
	}
}
