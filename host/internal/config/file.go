package config

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/sockplay/sockplay/sdk/protocol"
	"github.com/sockplay/sockplay/sdk/protocol/rules"
)

// File is a `sockplay serve --config FILE`: HCL (HashiCorp's configuration
// language, github.com/hashicorp/hcl/v2) that says what the serve flags say,
// each under the flag's name with "_" for "-", and one plugin block per
// plugin:
//
//	admin         = "127.0.0.1:12380"
//	enable        = ["echo", "chat"]
//	drain_timeout = "5s"
//	plugin "echo" {
//	  listen          = "127.0.0.1:12348"
//	  allow           = ["127.0.0.0/8"]
//	  deny            = ["127.0.0.3/32"]
//	  max_conns       = 100
//	  max_per_source  = 2
//	  rate_per_source = "10/s:20"
//	  proxy_protocol  = ["127.0.0.2"]
//	  set             = { linger = "10ms" }
//	}
//	plugin "*" { max_per_source = 8 }   # rules for every plugin
//
// Durations are strings in Go's syntax ("10s", "1m30s"). A flag given on the
// command line overrides the file's value; for the per-plugin settings,
// rule by rule and option by option. Every error names the file, the line
// and the key.
type File struct {
	Path string
	body fileBody
	syn  *hclsyntax.Body
}

type fileBody struct {
	Admin             *string       `hcl:"admin,optional"`
	PluginDir         *string       `hcl:"plugin_dir,optional"`
	Enable            []string      `hcl:"enable,optional"`
	LogLevel          *string       `hcl:"log_level,optional"`
	LogFormat         *string       `hcl:"log_format,optional"`
	LogTime           *bool         `hcl:"log_time,optional"`
	DrainTimeout      *string       `hcl:"drain_timeout,optional"`
	StartTimeout      *string       `hcl:"start_timeout,optional"`
	Backlog           *int          `hcl:"backlog,optional"`
	UDPReadBuffer     *int          `hcl:"udp_read_buffer,optional"`
	UDPWriteBuffer    *int          `hcl:"udp_write_buffer,optional"`
	CrashLimit        *int          `hcl:"crash_limit,optional"`
	CrashWindow       *string       `hcl:"crash_window,optional"`
	RestartBackoffMax *string       `hcl:"restart_backoff_max,optional"`
	Handoff           *string       `hcl:"handoff,optional"`
	Standby           *bool         `hcl:"standby,optional"`
	HealthInterval    *string       `hcl:"health_interval,optional"`
	HealthTimeout     *string       `hcl:"health_timeout,optional"`
	AdminToken        *string       `hcl:"admin_token,optional"`
	Trace             []string      `hcl:"trace,optional"`
	TraceBytes        *int          `hcl:"trace_bytes,optional"`
	LogConns          *bool         `hcl:"log_conns,optional"`
	StatusFile        *string       `hcl:"status_file,optional"`
	Plugins           []pluginBlock `hcl:"plugin,block"`
}

type pluginBlock struct {
	Name          string            `hcl:"name,label"`
	Listen        *string           `hcl:"listen,optional"`
	Set           map[string]string `hcl:"set,optional"`
	Allow         []string          `hcl:"allow,optional"`
	Deny          []string          `hcl:"deny,optional"`
	MaxConns      *int              `hcl:"max_conns,optional"`
	MaxPerSource  *int              `hcl:"max_per_source,optional"`
	RatePerSource *string           `hcl:"rate_per_source,optional"`
	ProxyProtocol []string          `hcl:"proxy_protocol,optional"`
	DefRange      hcl.Range         `hcl:",def_range"`
}

// Logging are the log settings, which the command line keeps apart from
// Config since they make the logger before anything else runs.
type Logging struct {
	Level  string // trace, debug, info, warn, error
	Format string // text or json
	Time   bool   // start each line with the time
}

// LoadFile reads and decodes a config file. Its error is one line naming the
// file, the line and the key.
func LoadFile(path string) (*File, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	f, diags := hclparse.NewParser().ParseHCL(src, path)
	if diags.HasErrors() {
		return nil, diagError(diags, nil)
	}
	syn, _ := f.Body.(*hclsyntax.Body)
	var b fileBody
	if diags := gohcl.DecodeBody(f.Body, nil, &b); diags.HasErrors() {
		return nil, diagError(diags, syn)
	}
	return &File{Path: path, body: b, syn: syn}, nil
}

// diagError makes the first error diagnostic one line: FILE:LINE,COL: what,
// naming the key it is in when the diagnostic does not.
func diagError(diags hcl.Diagnostics, syn *hclsyntax.Body) error {
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		msg := d.Summary
		if d.Detail != "" {
			msg += ": " + strings.TrimSuffix(d.Detail, ".")
		}
		msg = strings.ReplaceAll(msg, "\n", " ")
		if d.Subject == nil {
			return fmt.Errorf("%s", msg)
		}
		if key := keyAt(syn, d.Subject.Start); key != "" && !strings.Contains(msg, `"`+lastKey(key)+`"`) {
			msg = key + ": " + msg
		}
		return fmt.Errorf("%s:%d,%d: %s", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column, msg)
	}
	return diags
}

// keyAt names the attribute at pos: "backlog", `plugin "echo": allow`.
func keyAt(syn *hclsyntax.Body, pos hcl.Pos) string {
	if syn == nil {
		return ""
	}
	in := func(r hcl.Range) bool { return r.ContainsOffset(pos.Byte) || r.Start.Byte == pos.Byte }
	for name, a := range syn.Attributes {
		if in(a.SrcRange) {
			return name
		}
	}
	for _, b := range syn.Blocks {
		if in(b.Range()) {
			if k := keyAt(b.Body, pos); k != "" {
				return fmt.Sprintf("%s %q: %s", b.Type, strings.Join(b.Labels, " "), k)
			}
		}
	}
	return ""
}

func lastKey(key string) string {
	if i := strings.LastIndex(key, ": "); i >= 0 {
		return key[i+2:]
	}
	return key
}

// at is the place of attribute key (in plugin block p, if not nil) for an
// error: "FILE:LINE: key".
func (f *File) at(p *pluginBlock, key string) string {
	body := f.syn
	where := key
	if p != nil {
		where = fmt.Sprintf("plugin %q: %s", p.Name, key)
		body = nil
		for _, b := range f.syn.Blocks {
			if b.Type == "plugin" && len(b.Labels) == 1 && b.Labels[0] == p.Name && b.DefRange() == p.DefRange {
				body = b.Body
			}
		}
	}
	line := 0
	if p != nil {
		line = p.DefRange.Start.Line
	}
	if body != nil {
		if a, ok := body.Attributes[key]; ok {
			line = a.SrcRange.Start.Line
		}
	}
	return fmt.Sprintf("%s:%d: %s", f.Path, line, where)
}

// Apply puts the file's settings into c and log, except those whose flag
// (the key with "-" for "_") changed says the command line gave: those stay.
// The per-plugin maps (listen, set, rules) are merged key by key with the
// ones already in c, which win. Every value is checked; the first bad one is
// an error naming the file, the line and the key.
func (f *File) Apply(c *Config, log *Logging, changed func(flag string) bool) error {
	b := f.body
	str := func(key string, v *string, dst *string) {
		if v != nil && !changed(strings.ReplaceAll(key, "_", "-")) {
			*dst = *v
		}
	}
	num := func(key string, v *int, dst *int) {
		if v != nil && !changed(strings.ReplaceAll(key, "_", "-")) {
			*dst = *v
		}
	}
	flag := func(key string, v *bool, dst *bool) {
		if v != nil && !changed(strings.ReplaceAll(key, "_", "-")) {
			*dst = *v
		}
	}
	dur := func(key string, v *string, dst *time.Duration) error {
		if v == nil || changed(strings.ReplaceAll(key, "_", "-")) {
			return nil
		}
		d, err := time.ParseDuration(*v)
		if err != nil {
			return fmt.Errorf("%s: %q is not a duration (want such as 10s or 1m30s)", f.at(nil, key), *v)
		}
		*dst = d
		return nil
	}
	if b.Admin != nil {
		if *b.Admin != AdminOff {
			if err := CheckAddr(*b.Admin); err != nil {
				return fmt.Errorf("%s: %w", f.at(nil, "admin"), err)
			}
		}
		if !changed("admin") {
			c.Admin = *b.Admin
		}
	}
	str("plugin_dir", b.PluginDir, &c.PluginDir)
	if b.Enable != nil && !changed("enable") {
		c.Enable = b.Enable
	}
	str("log_level", b.LogLevel, &log.Level)
	if b.LogLevel != nil && hclog.LevelFromString(*b.LogLevel) == hclog.NoLevel {
		return fmt.Errorf("%s: %q is not a log level (trace, debug, info, warn or error)", f.at(nil, "log_level"), *b.LogLevel)
	}
	str("log_format", b.LogFormat, &log.Format)
	if b.LogFormat != nil && *b.LogFormat != "text" && *b.LogFormat != "json" {
		return fmt.Errorf("%s: %q: want text or json", f.at(nil, "log_format"), *b.LogFormat)
	}
	flag("log_time", b.LogTime, &log.Time)
	for _, d := range []struct {
		key string
		v   *string
		dst *time.Duration
	}{
		{"drain_timeout", b.DrainTimeout, &c.DrainTimeout},
		{"start_timeout", b.StartTimeout, &c.StartTimeout},
		{"crash_window", b.CrashWindow, &c.CrashWindow},
		{"restart_backoff_max", b.RestartBackoffMax, &c.BackoffMax},
		{"health_interval", b.HealthInterval, &c.HealthInterval},
		{"health_timeout", b.HealthTimeout, &c.HealthTimeout},
	} {
		if err := dur(d.key, d.v, d.dst); err != nil {
			return err
		}
	}
	num("backlog", b.Backlog, &c.Backlog)
	num("udp_read_buffer", b.UDPReadBuffer, &c.UDPReadBuffer)
	num("udp_write_buffer", b.UDPWriteBuffer, &c.UDPWriteBuffer)
	num("crash_limit", b.CrashLimit, &c.CrashLimit)
	str("handoff", b.Handoff, &c.Handoff)
	flag("standby", b.Standby, &c.Standby)
	str("admin_token", b.AdminToken, &c.AdminToken)
	if b.Trace != nil && !changed("trace") {
		c.Trace = b.Trace
	}
	num("trace_bytes", b.TraceBytes, &c.TraceBytes)
	flag("log_conns", b.LogConns, &c.LogConns)
	str("status_file", b.StatusFile, &c.StatusFile)
	v := *c
	if v.PluginDir == "" {
		v.PluginDir = "." // the command line puts its default in after the file
	}
	if err := v.Validate(); err != nil {
		return fmt.Errorf("%s: %w", f.Path, err)
	}

	fileRules := map[string]*protocol.Rules{}
	seen := map[string]bool{}
	for i := range b.Plugins {
		p := &b.Plugins[i]
		if seen[p.Name] {
			return fmt.Errorf("%s:%d: plugin %q is given twice", f.Path, p.DefRange.Start.Line, p.Name)
		}
		seen[p.Name] = true
		if p.Name == "" || strings.ContainsAny(p.Name, " ,=/") {
			return fmt.Errorf("%s:%d: plugin %q: not a plugin name", f.Path, p.DefRange.Start.Line, p.Name)
		}
		if c.Origin[p.Name] == "" {
			c.Origin[p.Name] = fmt.Sprintf("%s:%d: plugin %q", f.Path, p.DefRange.Start.Line, p.Name)
		}
		if p.Name == AllPlugins && (p.Listen != nil || len(p.Set) > 0) {
			key := "listen"
			if p.Listen == nil {
				key = "set"
			}
			return fmt.Errorf("%s: plugin \"*\" holds rules only; %s is per plugin", f.at(p, key), key)
		}
		if p.Listen != nil {
			if err := CheckAddr(*p.Listen); err != nil {
				return fmt.Errorf("%s: %w", f.at(p, "listen"), err)
			}
			if _, flagged := c.Listen[p.Name]; !flagged {
				c.Listen[p.Name] = *p.Listen
			}
		}
		if len(p.Set) > 0 {
			c.Origin[p.Name+".set"] = f.at(p, "set")
		}
		for k, v := range p.Set {
			if c.Set[p.Name] == nil {
				c.Set[p.Name] = map[string]string{}
			}
			if _, flagged := c.Set[p.Name][k]; !flagged {
				c.Set[p.Name][k] = v
			}
		}
		r := &protocol.Rules{}
		lists := []struct {
			key string
			in  []string
			dst *[]string
		}{{"allow", p.Allow, &r.Allow}, {"deny", p.Deny, &r.Deny}, {"proxy_protocol", p.ProxyProtocol, &r.ProxyProtocol}}
		for _, l := range lists {
			ps, err := rules.ParsePrefixes(l.key, l.in)
			if err != nil {
				return fmt.Errorf("%s: %w", f.at(p, l.key), unprefix(err, l.key))
			}
			for _, pr := range ps {
				*l.dst = append(*l.dst, pr.String())
			}
		}
		counts := []struct {
			key string
			in  *int
			dst *uint32
		}{{"max_conns", p.MaxConns, &r.MaxConns}, {"max_per_source", p.MaxPerSource, &r.MaxPerSource}}
		for _, n := range counts {
			if n.in == nil {
				continue
			}
			v, err := ParseCount(fmt.Sprint(*n.in))
			if err != nil {
				return fmt.Errorf("%s: %w", f.at(p, n.key), err)
			}
			*n.dst = v
		}
		if p.RatePerSource != nil {
			var err error
			if r.RatePerSource, r.RateBurst, err = rules.ParseRate(*p.RatePerSource); err != nil {
				return fmt.Errorf("%s: %w", f.at(p, "rate_per_source"), err)
			}
		}
		if !proto0(r) {
			fileRules[p.Name] = r
		}
	}
	c.Rules = MergeRules(fileRules, c.Rules)
	return nil
}
