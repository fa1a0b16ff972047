package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sockplay/sockplay/host/internal/config"
)

func writeFile(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "sockplay.hcl")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// The shape issue 17 names.
const issueShape = `admin = "127.0.0.1:12380"
plugin "echo" {
  listen         = "127.0.0.1:12348"
  allow          = ["127.0.0.0/8"]
  deny           = ["127.0.0.3/32"]
  max_per_source = 2
  set            = { linger = "10ms" }
}
`

func TestFileApply(t *testing.T) {
	path := writeFile(t, issueShape+`
enable        = ["echo", "chat"]
drain_timeout = "3s"
log_level     = "debug"
handoff       = "listener"
standby       = true
health_interval = "500ms"
health_timeout  = "3s"
plugin "*" {
  max_conns       = 50
  rate_per_source = "30/m:4"
}
plugin "chat" { proxy_protocol = ["127.0.0.2"] }
`)
	f, err := config.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// No plugin_dir in the file and none on the command line: the command
	// line's default comes after the file, so the file alone is fine.
	c := config.Default()
	c.PluginDir = ""
	log := config.Logging{Level: "info", Format: "text", Time: true}
	if err := f.Apply(&c, &log, func(string) bool { return false }); err != nil {
		t.Fatal(err)
	}
	if c.PluginDir != "" {
		t.Fatalf("plugin dir %q, want it left to the command line", c.PluginDir)
	}
	if c.Admin != "127.0.0.1:12380" || c.Listen["echo"] != "127.0.0.1:12348" || c.Set["echo"]["linger"] != "10ms" ||
		c.DrainTimeout != 3*time.Second || log.Level != "debug" || c.Handoff != "listener" || !c.Standby ||
		c.HealthInterval != 500*time.Millisecond || c.HealthTimeout != 3*time.Second ||
		strings.Join(c.Enable, ",") != "echo,chat" {
		t.Fatalf("applied: %+v, log %+v", c, log)
	}
	echo := c.RulesFor("echo", false)
	if echo.GetMaxPerSource() != 2 || echo.GetMaxConns() != 50 || echo.GetRateBurst() != 4 || echo.GetDeny()[0] != "127.0.0.3/32" {
		t.Fatalf("echo's rules: %v", echo)
	}
	if chat := c.RulesFor("chat", false); len(chat.GetProxyProtocol()) != 1 || chat.GetMaxConns() != 50 {
		t.Fatalf("chat's rules: %v", chat)
	}
}

func TestFlagsOverrideFile(t *testing.T) {
	path := writeFile(t, issueShape+"drain_timeout = \"3s\"\nbacklog = 10\n")
	f, err := config.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c := config.Default()
	c.PluginDir = "/x"
	c.DrainTimeout = time.Minute // as --drain-timeout 1m put it
	c.Listen["echo"] = "127.0.0.1:0"
	c.Set["echo"] = map[string]string{"linger": "1s"}
	flagRules, _, err := config.ParseRules(config.RuleFlags{MaxPerSource: []string{"echo=9"}})
	if err != nil {
		t.Fatal(err)
	}
	c.Rules = flagRules
	changed := func(flag string) bool { return flag == "drain-timeout" }
	if err := f.Apply(&c, &config.Logging{}, changed); err != nil {
		t.Fatal(err)
	}
	r := c.RulesFor("echo", false)
	if c.DrainTimeout != time.Minute || c.Backlog != 10 || c.Listen["echo"] != "127.0.0.1:0" || c.Set["echo"]["linger"] != "1s" ||
		r.GetMaxPerSource() != 9 || len(r.GetAllow()) != 1 {
		t.Fatalf("after flags: %+v, rules %v", c, r)
	}
}

func TestFileErrors(t *testing.T) {
	for _, tc := range []struct {
		name, text, want string
	}{
		{"typo in a plugin", strings.Replace(issueShape, "max_per_source", "max_per_sorce", 1),
			`:6,3: Unsupported argument: An argument named "max_per_sorce" is not expected here. Did you mean "max_per_source"?`},
		{"unknown top-level key", "admn = \"127.0.0.1:1\"\n", `:1,1: Unsupported argument: An argument named "admn" is not expected here. Did you mean "admin"?`},
		{"type error", strings.Replace(issueShape, "= 2", `= "two"`, 1), `:6,21: plugin "echo": max_per_source: Unsuitable value type: Unsuitable value: a number is required`},
		{"list for a string", "admin = [\"x\"]\n", `:1,9: admin: Unsuitable value type`},
		{"syntax", "plugin \"echo\" {\n  allow = [\n}\n", `:3,1: `},
		{"bad CIDR", strings.Replace(issueShape, "127.0.0.3/32", "127.0.0.3/33", 1), `:5: plugin "echo": deny: "127.0.0.3/33" is not a CIDR`},
		{"overlap", strings.Replace(issueShape, `["127.0.0.0/8"]`, `["127.0.0.0/8", "127.0.0.9"]`, 1), `:4: plugin "echo": allow: 127.0.0.0/8 and 127.0.0.9/32 overlap`},
		{"bad rate", "plugin \"echo\" {\n  rate_per_source = \"5/h\"\n}\n", `:2: plugin "echo": rate_per_source: rate "5/h": unit "h" is neither s nor m`},
		{"zero count", "plugin \"echo\" {\n  max_conns = 0\n}\n", `:2: plugin "echo": max_conns: "0" is not a whole number`},
		{"bad listen", "plugin \"echo\" {\n  listen = \"127.0.0.1\"\n}\n", `:2: plugin "echo": listen: address "127.0.0.1"`},
		{"bad duration", "drain_timeout = \"soon\"\n", `:1: drain_timeout: "soon" is not a duration`},
		{"bad admin", "admin = \"nowhere\"\n", `:1: admin: address "nowhere"`},
		{"bad level", "log_level = \"loud\"\n", `:1: log_level: "loud" is not a log level`},
		{"plugin twice", "plugin \"echo\" {}\nplugin \"echo\" {}\n", `:2: plugin "echo" is given twice`},
		{"listen for every plugin", "plugin \"*\" {\n  listen = \"127.0.0.1:0\"\n}\n", `:2: plugin "*": listen: plugin "*" holds rules only`},
		{"invalid config", "handoff = \"pigeon\"\n", `: --handoff "pigeon": want conn or listener`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, tc.text)
			f, err := config.LoadFile(path)
			if err == nil {
				c := config.Default()
				c.PluginDir = "/x"
				err = f.Apply(&c, &config.Logging{}, func(string) bool { return false })
			}
			if err == nil || !strings.HasPrefix(err.Error(), path) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %v; want one line starting with %s and containing %q", err, path, tc.want)
			}
		})
	}
	if _, err := config.LoadFile(filepath.Join(t.TempDir(), "none.hcl")); err == nil || !strings.Contains(err.Error(), "none.hcl") {
		t.Fatalf("a missing file: %v", err)
	}
}

// The observation keys: admin off, a token, trace mode and the connection log.
func TestFileObservation(t *testing.T) {
	path := writeFile(t, `admin = "off"
admin_token = "tok"
trace = ["echo"]
trace_bytes = 100
log_conns = true
`)
	f, err := config.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c := config.Default()
	c.PluginDir = "/x"
	log := config.Logging{Level: "info", Format: "text", Time: true}
	if err := f.Apply(&c, &log, func(string) bool { return false }); err != nil {
		t.Fatal(err)
	}
	if c.Admin != config.AdminOff || c.AdminToken != "tok" || strings.Join(c.Trace, ",") != "echo" || c.TraceBytes != 100 || !c.LogConns {
		t.Fatalf("applied: %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}
