package sdk

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sockplay/sockplay/sdk/client"
	"github.com/sockplay/sockplay/sdk/protocol"
)

// Option is a setting a plugin takes, set on the host's command line with
// --set NAME.KEY=VALUE.
type Option struct {
	Name    string
	Default string
	Help    string
}

// Plugin describes a protocol plugin. Its transport follows from the handler
// it builds: set TCP for a TCP plugin, or UDP for a UDP plugin, not both.
type Plugin struct {
	// Name is the plugin's name: lower case letters, digits and dashes. The
	// binary is called sockplay-<Name>.
	Name string
	// Version is the plugin's own semantic version, such as "1.2.0".
	Version string
	// Summary is one line about what the plugin serves.
	Summary string
	// DefaultAddr is where the host listens when not told otherwise.
	DefaultAddr string
	// Options are the settings the plugin takes.
	Options []Option

	// TCP, set, makes a TCP plugin: it builds the plugin's handler from its
	// configuration, once, when the host configures the plugin (before the
	// first connection).
	TCP func(cfg Config) (Handler, error)
	// UDP, set, makes a UDP plugin: it builds the plugin's handler from its
	// configuration, once, before the first datagram.
	UDP func(cfg Config) (PacketHandler, error)

	// Commands are the client's subcommands, run when the binary is started
	// by hand (`sockplay-NAME COMMAND ...`; package sdk/client). Optional: a
	// plugin without any says so in its --help, and the host serves it all
	// the same.
	Commands []client.Command
}

// Validate reports the first thing wrong with p.
func (p *Plugin) Validate() error {
	switch {
	case !protocol.ValidName(p.Name):
		return fmt.Errorf("plugin name %q: want lower case letters, digits and dashes", p.Name)
	case !protocol.ValidVersion(p.Version):
		return fmt.Errorf("plugin %s: version %q is not a semantic version (1.2.3)", p.Name, p.Version)
	case p.TCP == nil && p.UDP == nil:
		return fmt.Errorf("plugin %s: no handler: set TCP for a TCP plugin or UDP for a UDP plugin", p.Name)
	case p.TCP != nil && p.UDP != nil:
		return fmt.Errorf("plugin %s: both TCP and UDP are set: a plugin serves one transport", p.Name)
	}
	_, port, err := net.SplitHostPort(p.DefaultAddr)
	if err != nil {
		return fmt.Errorf("plugin %s: default address: %w", p.Name, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("plugin %s: default address %q: the port must be a number from 0 to 65535", p.Name, p.DefaultAddr)
	}
	cmds := map[string]bool{"help": true, "version": true, "completion": true}
	for _, c := range p.Commands {
		if !protocol.ValidName(c.Name) || cmds[c.Name] {
			return fmt.Errorf("plugin %s: command name %q is invalid, reserved (help, version, completion) or repeated", p.Name, c.Name)
		}
		cmds[c.Name] = true
	}
	seen := map[string]bool{}
	for _, o := range p.Options {
		if !protocol.ValidName(o.Name) || seen[o.Name] {
			return fmt.Errorf("plugin %s: option name %q is invalid or repeated", p.Name, o.Name)
		}
		seen[o.Name] = true
	}
	return nil
}

// Config builds the configuration the plugin's handler sees: every declared
// option with its default, overridden by values. An option the plugin does not
// declare is an error that names the options it does.
func (p *Plugin) Config(values map[string]string, log hclog.Logger) (Config, error) {
	opts := make(map[string]string, len(p.Options))
	for _, o := range p.Options {
		opts[o.Name] = o.Default
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if _, ok := opts[k]; !ok {
			return Config{}, fmt.Errorf("%s has no option %q (options: %s)", p.Name, k, p.optionNames())
		}
		opts[k] = values[k]
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return Config{plugin: p.Name, options: opts, Logger: log}, nil
}

// transport is the plugin's transport, as the contract names it.
func (p *Plugin) transport() protocol.Transport {
	switch {
	case p.TCP != nil && p.UDP == nil:
		return protocol.Transport_TRANSPORT_TCP
	case p.UDP != nil && p.TCP == nil:
		return protocol.Transport_TRANSPORT_UDP
	}
	return protocol.Transport_TRANSPORT_UNSPECIFIED
}

// Client returns the plugin's command line run by hand, for client.Run:
// its name, version, summary and Commands, and for --help how the host
// serves it (transport, default address, options). Main runs it when no host
// started the binary; a test runs it in-process:
//
//	code := client.Run(ctx, p.Client(), []string{"connect", addr}, stdio)
func (p *Plugin) Client() client.Program {
	var b strings.Builder
	network := "TCP"
	if p.transport() == protocol.Transport_TRANSPORT_UDP {
		network = "UDP"
	}
	fmt.Fprintf(&b, "Served by the host (sockplay serve --enable %s) on %s %s by default.", p.Name, network, p.DefaultAddr)
	if len(p.Options) > 0 {
		fmt.Fprintf(&b, "\n\nOptions, set with sockplay serve --set %s.KEY=VALUE:\n", p.Name)
		for _, o := range p.Options {
			fmt.Fprintf(&b, "  %-14s %s (default %q)\n", o.Name, o.Help, o.Default)
		}
	}
	return client.Program{Name: p.Name, Version: p.Version, Summary: p.Summary, Serving: b.String(),
		Commands: p.Commands}
}

func (p *Plugin) optionNames() string {
	if len(p.Options) == 0 {
		return "none"
	}
	names := make([]string, len(p.Options))
	for i, o := range p.Options {
		names[i] = o.Name
	}
	return strings.Join(names, ", ")
}

// Config is a plugin's configuration: its option values and its logger.
type Config struct {
	plugin  string
	options map[string]string
	// Logger reaches the host's log, named after the plugin.
	Logger hclog.Logger
}

// String returns the value of option name ("" for an undeclared one).
func (c Config) String(name string) string { return c.options[name] }

// Int parses option name as a decimal integer.
func (c Config) Int(name string) (int, error) {
	v, err := strconv.Atoi(strings.TrimSpace(c.options[name]))
	if err != nil {
		return 0, c.bad(name, "an integer")
	}
	return v, nil
}

// Bool parses option name as a boolean (true, false, 1, 0, yes, no).
func (c Config) Bool(name string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(c.options[name])) {
	case "1", "t", "true", "yes", "on":
		return true, nil
	case "0", "f", "false", "no", "off", "":
		return false, nil
	}
	return false, c.bad(name, "true or false")
}

// Duration parses option name as a Go duration such as 250ms or 2s.
func (c Config) Duration(name string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(c.options[name]))
	if err != nil {
		return 0, c.bad(name, "a duration such as 500ms")
	}
	return d, nil
}

func (c Config) bad(name, want string) error {
	return fmt.Errorf("option %s.%s=%q: want %s", c.plugin, name, c.options[name], want)
}
