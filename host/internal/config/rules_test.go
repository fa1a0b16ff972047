package config_test

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/sockplay/sockplay/host/internal/config"
	"github.com/sockplay/sockplay/sdk/protocol"
	"github.com/sockplay/sockplay/sdk/protocol/rules"
)

func TestParseRules(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    config.RuleFlags
		want map[string]*protocol.Rules
		err  string
	}{
		{name: "none", want: map[string]*protocol.Rules{}},
		{name: "every rule", f: config.RuleFlags{
			Allow: []string{"*=127.0.0.0/8,::1", "echo=10.0.0.0/8"}, Deny: []string{"echo=127.0.0.3"},
			MaxConns: []string{"echo=100"}, MaxPerSource: []string{"*=4"}, RatePerSource: []string{"echo=30/m:5"},
			ProxyProtocol: []string{"echo=127.0.0.2"},
		}, want: map[string]*protocol.Rules{
			"*":    {Allow: []string{"127.0.0.0/8", "::1/128"}, MaxPerSource: 4},
			"echo": {Allow: []string{"10.0.0.0/8"}, Deny: []string{"127.0.0.3/32"}, MaxConns: 100, RatePerSource: 0.5, RateBurst: 5, ProxyProtocol: []string{"127.0.0.2/32"}},
		}},
		{name: "a list given twice adds", f: config.RuleFlags{Deny: []string{"echo=127.0.0.3", "echo=127.0.0.4"}},
			want: map[string]*protocol.Rules{"echo": {Deny: []string{"127.0.0.3/32", "127.0.0.4/32"}}}},
		{name: "overlap across flags", f: config.RuleFlags{Deny: []string{"echo=127.0.0.0/8", "echo=127.0.0.4"}},
			err: "--deny echo=127.0.0.4: 127.0.0.0/8 and 127.0.0.4/32 overlap"},
		{name: "bad CIDR", f: config.RuleFlags{Allow: []string{"echo=1.2.3.4/40"}}, err: `--allow echo=1.2.3.4/40: "1.2.3.4/40" is not a CIDR`},
		{name: "empty list", f: config.RuleFlags{Allow: []string{"echo="}}, err: "--allow echo=: no CIDR given"},
		{name: "no name", f: config.RuleFlags{MaxConns: []string{"=3"}}, err: `--max-conns "=3": want NAME=VALUE`},
		{name: "count given twice", f: config.RuleFlags{MaxConns: []string{"echo=3", "echo=4"}}, err: "--max-conns echo=4: echo is given twice"},
		{name: "count not a number", f: config.RuleFlags{MaxPerSource: []string{"echo=many"}}, err: `--max-per-source echo=many: "many" is not a whole number`},
		{name: "count zero", f: config.RuleFlags{MaxPerSource: []string{"echo=0"}}, err: `"0" is not a whole number from 1`},
		{name: "bad rate", f: config.RuleFlags{RatePerSource: []string{"echo=1/h"}}, err: `--rate-per-source echo=1/h: rate "1/h": unit "h"`},
		{name: "rate twice", f: config.RuleFlags{RatePerSource: []string{"echo=1", "echo=2"}}, err: "echo is given twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, origin, err := config.ParseRules(tc.f)
			checkErr(t, "ParseRules", err, tc.err)
			if tc.err != "" {
				return
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for name, w := range tc.want {
				if !proto.Equal(got[name], w) {
					t.Fatalf("%s: got %v, want %v", name, got[name], w)
				}
				if origin[name] == "" {
					t.Fatalf("no origin for %s", name)
				}
			}
		})
	}
}

func TestRulesFor(t *testing.T) {
	cfg := config.Default()
	cfg.Rules = map[string]*protocol.Rules{
		"*":    {Allow: []string{"127.0.0.0/8"}, MaxPerSource: 2},
		"echo": {MaxPerSource: 5},
	}
	if got := cfg.RulesFor("echo", false); got.GetMaxPerSource() != 5 || len(got.GetAllow()) != 1 {
		t.Fatalf("echo: %v", got)
	}
	if got := cfg.RulesFor("chat", false); got.GetMaxPerSource() != 2 {
		t.Fatalf("chat: %v", got)
	}
	// A UDP plugin takes from "*" what applies to datagrams only; its own
	// connection limit stays (and is refused where it is placed).
	cfg.Rules["*"].MaxConns, cfg.Rules["*"].ProxyProtocol, cfg.Rules["*"].RatePerSource = 9, []string{"127.0.0.2"}, 10
	if got := cfg.RulesFor("udpecho", true); got.GetMaxPerSource() != 0 || got.GetMaxConns() != 0 ||
		len(got.GetProxyProtocol()) != 0 || len(got.GetAllow()) != 1 || got.GetRatePerSource() != 10 {
		t.Fatalf("udpecho: %v", got)
	}
	cfg.Rules["udpecho"] = &protocol.Rules{MaxConns: 3}
	if got := cfg.RulesFor("udpecho", true); got.GetMaxConns() != 3 {
		t.Fatalf("udpecho's own max-conns: %v", got)
	}
	cfg.Rules = nil
	if got := cfg.RulesFor("chat", false); got != nil {
		t.Fatalf("no rules: %v", got)
	}
}

// FuzzParseRules: any flag value parses to rules that compile, or to one
// error line that names the flag.
func FuzzParseRules(f *testing.F) {
	for _, s := range []string{"echo=127.0.0.0/8", "*=::1,127.0.0.2", "echo=3", "echo=10/s:5", "=x", "echo=", "a=b=c", "echo=1/m"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		for flag, fl := range map[string]config.RuleFlags{
			"--allow":           {Allow: []string{v}},
			"--max-conns":       {MaxConns: []string{v}},
			"--rate-per-source": {RatePerSource: []string{v}},
			"--proxy-protocol":  {ProxyProtocol: []string{v}},
		} {
			got, _, err := config.ParseRules(fl)
			if err != nil {
				if !strings.HasPrefix(err.Error(), flag+" ") || strings.Contains(err.Error(), "\n") {
					t.Fatalf("%s %q: error %q does not start with the flag, or is more than one line", flag, v, err)
				}
				continue
			}
			for name, r := range got {
				if _, err := rules.Compile(r); err != nil {
					t.Fatalf("%s %q: plugin %s's rules %v do not compile: %v", flag, v, name, r, err)
				}
			}
		}
	})
}
