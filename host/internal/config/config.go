// Package config is the host's configuration: one struct with defaults and a
// Validate step, and the parsers of the repeatable command-line values
// (--listen NAME=HOST:PORT, --set NAME.KEY=VALUE). Only the host's main reads
// flags and the environment; everything else takes a Config.
package config

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sockplay/sockplay/sdk/protocol"
)

// Config is what `sockplay serve` runs with.
type Config struct {
	// PluginDir is where plugin binaries are found.
	PluginDir string
	// SearchPath is a $PATH value: a plugin named in Enable that is not in
	// PluginDir is looked up in its directories.
	SearchPath string
	// Enable lists the plugins to serve; empty means every plugin found.
	Enable []string
	// Listen moves a plugin off its default address.
	Listen map[string]string
	// Set holds option values per plugin.
	Set map[string]map[string]string
	// Rules holds the access rules by plugin name; AllPlugins ("*") holds
	// those for every plugin (RulesFor merges them).
	Rules map[string]*protocol.Rules
	// ConfigFile is the file the configuration was read from ("" for none):
	// a reload (SIGHUP) reads it again.
	ConfigFile string
	// Sockets are listening sockets passed to the host (systemd's socket
	// activation), by the name of the plugin each is for: the host adopts
	// them instead of binding. With any, and Enable empty, exactly the
	// plugins they name are served.
	Sockets map[string]*os.File
	// Origin says where each plugin named in Listen, Set or Rules was first
	// given ("--allow echo=...", "sockplay.hcl:7"), for errors about it.
	Origin map[string]string

	LogLevel hclog.Level
	LogJSON  bool
	RunDir   string // base for per-plugin socket directories; "" means os.TempDir()
	// StatusFile is where the host keeps every plugin's state for `sockplay
	// status`; "" writes none.
	StatusFile string

	// DrainTimeout bounds how long a graceful stop waits for connections.
	DrainTimeout time.Duration
	// Backlog is the kernel accept queue of each TCP listener: clients wait in
	// it while a plugin restarts.
	Backlog int
	// UDPReadBuffer and UDPWriteBuffer size each UDP socket's kernel buffers
	// (0 keeps the system default): datagrams wait there while a plugin
	// restarts.
	UDPReadBuffer  int
	UDPWriteBuffer int

	// Restart policy.
	BackoffInitial time.Duration
	BackoffMax     time.Duration
	CrashLimit     int           // this many crashes ...
	CrashWindow    time.Duration // ... within this window mark a plugin failed
	StartTimeout   time.Duration
	// Standby keeps a configured spare process of each plugin, which takes
	// over at once when the serving one dies.
	Standby bool
	// Handoff says how TCP connections reach a plugin: HandoffListener (the
	// default: the host shares its listening socket and the plugin accepts,
	// where the plugin can) or HandoffConn (the host accepts and passes
	// each connection).
	Handoff string
	// HealthInterval is how often each serving plugin is asked for its
	// Health (0: never), each call with a HealthTimeout deadline; a plugin
	// that misses two in a row is taken for frozen and restarted.
	HealthInterval time.Duration
	HealthTimeout  time.Duration

	// Admin is the admin endpoint's HOST:PORT (metrics, status API, web
	// page; --admin, or the config file's admin key), or AdminOff. An
	// address outside loopback needs AdminToken, which every request must
	// then carry as a bearer token.
	Admin      string
	AdminToken string
	// Trace names the plugins in trace mode: each sends the first
	// TraceBytes bytes of every connection in each direction, and of every
	// datagram, to the host.
	Trace      []string
	TraceBytes int
	// LogConns logs one line per closed connection (xinetd's
	// log_on_success and log_on_failure).
	LogConns bool
}

// DefaultAdmin is the admin endpoint's default address; AdminOff turns it
// off.
const (
	DefaultAdmin = "127.0.0.1:12380"
	AdminOff     = "off"
)

// DefaultTraceBytes is how much of each direction trace mode copies.
const DefaultTraceBytes = 4096

// MaxTraceBytes bounds --trace-bytes.
const MaxTraceBytes = 1 << 20

// The values of Config.Handoff. Listener is the default since it costs a
// connection's setup no more than a server that accepts for itself, where
// conn costs about 1.5 times the CPU (an accept4 and a sendmsg in the host,
// a dup and fcntls in the plugin, and one more process woken per
// connection; BENCHMARKS.md). A plugin still gets conn handoff when it
// lacks feature "listener", or when it has rules to enforce and lacks
// feature "rules" (the host then enforces them as it accepts).
const (
	HandoffConn     = "conn"
	HandoffListener = "listener"
)

// Default returns the defaults.
func Default() Config {
	return Config{
		Listen:         map[string]string{},
		Set:            map[string]map[string]string{},
		Rules:          map[string]*protocol.Rules{},
		Origin:         map[string]string{},
		LogLevel:       hclog.Info,
		DrainTimeout:   10 * time.Second,
		Backlog:        4096,
		BackoffInitial: 5 * time.Millisecond,
		BackoffMax:     5 * time.Second,
		CrashLimit:     5,
		CrashWindow:    30 * time.Second,
		StartTimeout:   10 * time.Second,
		Handoff:        HandoffListener,
		HealthInterval: 2 * time.Second,
		HealthTimeout:  2 * time.Second,
		Admin:          DefaultAdmin,
		TraceBytes:     DefaultTraceBytes,
	}
}

// DefaultStatusFile is where `sockplay serve` writes its status and `sockplay
// status` reads it unless told otherwise.
func DefaultStatusFile() string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "sockplay", "status.json")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("sockplay-%d", os.Getuid()), "status.json")
}

// Validate reports the first thing wrong with c.
func (c *Config) Validate() error {
	switch {
	case c.PluginDir == "":
		return fmt.Errorf("--plugin-dir is empty")
	case c.DrainTimeout < 0:
		return fmt.Errorf("--drain-timeout %s is negative", c.DrainTimeout)
	case c.Backlog < 1 || c.Backlog > 1<<20:
		return fmt.Errorf("--backlog %d: want 1 to %d", c.Backlog, 1<<20)
	case c.UDPReadBuffer < 0 || c.UDPWriteBuffer < 0:
		return fmt.Errorf("UDP buffer sizes must not be negative")
	case c.BackoffInitial <= 0 || c.BackoffMax < c.BackoffInitial:
		return fmt.Errorf("restart backoff: initial %s, max %s: want 0 < initial <= max", c.BackoffInitial, c.BackoffMax)
	case c.CrashLimit < 1:
		return fmt.Errorf("--crash-limit %d: want at least 1", c.CrashLimit)
	case c.CrashWindow <= 0:
		return fmt.Errorf("--crash-window %s: want a positive duration", c.CrashWindow)
	case c.Handoff != HandoffConn && c.Handoff != HandoffListener:
		return fmt.Errorf("--handoff %q: want %s or %s", c.Handoff, HandoffConn, HandoffListener)
	case c.StartTimeout <= 0:
		return fmt.Errorf("--start-timeout %s: want a positive duration", c.StartTimeout)
	case c.HealthInterval < 0:
		return fmt.Errorf("--health-interval %s is negative", c.HealthInterval)
	case c.HealthTimeout <= 0:
		return fmt.Errorf("--health-timeout %s: want a positive duration", c.HealthTimeout)
	case c.TraceBytes < 1 || c.TraceBytes > MaxTraceBytes:
		return fmt.Errorf("--trace-bytes %d: want 1 to %d", c.TraceBytes, MaxTraceBytes)
	}
	if err := CheckAdmin(c.Admin, c.AdminToken); err != nil {
		return err
	}
	for _, name := range c.Trace {
		if name == "" {
			return fmt.Errorf("--trace: empty plugin name")
		}
	}
	for _, name := range c.Enable {
		if name == "" {
			return fmt.Errorf("--enable: empty plugin name")
		}
	}
	return nil
}

// Enabled reports whether plugin name is to be served.
func (c *Config) Enabled(name string) bool {
	return len(c.Enable) == 0 || slices.Contains(c.Enable, name)
}

// ParseListen parses NAME=HOST:PORT values into a map.
func ParseListen(values []string) (map[string]string, error) {
	out := map[string]string{}
	for _, v := range values {
		name, addr, ok := strings.Cut(v, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("--listen %q: want NAME=HOST:PORT", v)
		}
		if err := CheckAddr(addr); err != nil {
			return nil, fmt.Errorf("--listen %s: %w", v, err)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("--listen %s: %s is given twice", v, name)
		}
		out[name] = addr
	}
	return out, nil
}

// CheckAddr checks that addr is HOST:PORT with a numeric port.
func CheckAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	if port == "" {
		return fmt.Errorf("address %q: missing port", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("address %q: port %q is not a number from 0 to 65535", addr, port)
	}
	if host != "" && net.ParseIP(host) == nil && host != "localhost" {
		return fmt.Errorf("address %q: host must be an IP address or localhost", addr)
	}
	return nil
}

// CheckAdmin checks an --admin value: AdminOff, or HOST:PORT with a
// numeric port and an IP address or localhost that, unless token is set,
// is a loopback one: the endpoint shows every connection's peer (and, in
// trace mode, its bytes), so it is not served to the network by default.
func CheckAdmin(addr, token string) error {
	if addr == AdminOff {
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--admin %q: want HOST:PORT or %s", addr, AdminOff)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("--admin %q: port %q is not a number from 0 to 65535", addr, port)
	}
	ip := net.ParseIP(host)
	if host != "localhost" && host != "" && ip == nil {
		return fmt.Errorf("--admin %q: the host must be an IP address or localhost", addr)
	}
	if token == "" && host != "localhost" && (ip == nil || !ip.IsLoopback()) { // "" is every address
		return fmt.Errorf("--admin %s is not a loopback address: set --admin-token TOKEN to serve the admin endpoint there", addr)
	}
	return nil
}

// ParseSet parses NAME.KEY=VALUE values into per-plugin option maps.
func ParseSet(values []string) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	for _, v := range values {
		lhs, val, ok := strings.Cut(v, "=")
		name, key, ok2 := strings.Cut(lhs, ".")
		if !ok || !ok2 || name == "" || key == "" {
			return nil, fmt.Errorf("--set %q: want NAME.KEY=VALUE", v)
		}
		if out[name] == nil {
			out[name] = map[string]string{}
		}
		out[name][key] = val
	}
	return out, nil
}

// Named reports whether the user named plugin name with --enable (or the
// config file's enable), or systemd passed a socket for it: a plugin named
// so must start, where serving every plugin found is best effort for a
// plugin that cannot run (serve.Start says which failures those are).
func (c Config) Named(name string) bool {
	_, socket := c.Sockets[name]
	return slices.Contains(c.Enable, name) || socket
}
