package cli

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sync"

	"github.com/spf13/cobra"

	"github.com/sockplay/sockplay/host/internal/config"
	"github.com/sockplay/sockplay/host/internal/serve"
	"github.com/sockplay/sockplay/host/internal/systemd"
)

func init() { register(serveCommand) }

// serveFlags are the flags that do not map one to one onto config.Config.
type serveFlags struct {
	listens, sets []string
	log           config.Logging
	rules         config.RuleFlags
	config        string
	check         bool
}

func serveCommand(s Streams) *cobra.Command {
	cfg := config.Default()
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "serve every plugin found, each on its listener",
		Long: `Serve finds the plugins (executables named sockplay-NAME in --plugin-dir),
starts each as its own process, binds each one's listener on its default
127.0.0.1 address (or the one --listen gives) and shares the listening
socket with the plugin, which accepts on it (--handoff conn: the host
accepts each connection and hands it over).
It prints one line per plugin and a ready line, then serves until SIGINT or
SIGTERM, which stop accepting, give open connections --drain-timeout to
finish, stop the plugins and exit 0. A second signal stops at once. SIGHUP
reads --config again and applies the rules that changed, then replaces every
plugin whose binary changed on disk by a new process of it, refusing no
client (see 'sockplay reload'); SIGHUPs that come during a reload make one
more, and a stop during a reload cuts it short.

A plugin that crashes is restarted with capped, jittered exponential backoff
while its listener stays open: new clients wait in the kernel's backlog. One
that crashes --crash-limit times within --crash-window is marked failed and
its listener closed.

The host sees every connection (plugins with the "events" feature report
each one's open and close, bytes and reason) and shows it: 'sockplay
status', the admin endpoint on --admin (a live web page at /, Prometheus
metrics at /metrics, JSON at /api/status) and, for plugins named by
--trace, the bytes themselves ('sockplay trace'). The admin endpoint
serves loopback only unless --admin-token is set.

Serving every plugin found is best effort, as systemd starts the units that
can start when one fails and xinetd serves the services it can: a plugin
that cannot run (a missing module, a bad binary, its default port taken) is
logged in one line with the reason, shown as failed by 'sockplay status',
the page and /metrics, and the others serve; 'sockplay reload NAME' starts
it once fixed. A plugin named with --enable must start.

A bad start (a plugin named with --enable that will not start; an address,
option or rule given for a plugin that does not work; an unknown plugin; no
plugin that starts) prints one line naming the cause and exits 1, leaving
nothing running.`,
		Example: `  sockplay serve
  sockplay serve --enable echo,chat --listen echo=127.0.0.1:9000
  sockplay serve --set hello.greeting='hi there' --set filexfer.root=/srv/files
  sockplay serve --log-format json --log-time=false     # under systemd's journal
  sockplay serve --trace echo --log-conns               # then: sockplay trace echo`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runServe(cmd, cfg, f, s)
		},
	}
	fs := cmd.Flags()
	fs.SortFlags = false
	fs.StringVar(&cfg.PluginDir, "plugin-dir", "", "find sockplay-NAME plugin binaries in `DIR` (default: the sockplay binary's own directory)")
	fs.StringSliceVar(&cfg.Enable, "enable", nil, "serve only the plugins `NAME,...` (default: every plugin in --plugin-dir; a name not there is looked up in $PATH)")
	fs.StringArrayVar(&f.listens, "listen", nil, "serve plugin NAME on `NAME=HOST:PORT` instead of its default address; port 0 picks a free one (repeatable)")
	fs.StringArrayVar(&f.sets, "set", nil, "set option KEY of plugin NAME: `NAME.KEY=VALUE` (repeatable; sockplay-NAME --help lists them)")
	fs.StringVar(&f.config, "config", "", "read the settings from the HCL `FILE` (flags given too override it; SIGHUP reads it again)")
	fs.BoolVar(&f.check, "check", false, "check the --config file and the plugins it names, print what is wrong or \"ok\", and exit")
	fs.StringVar(&f.log.Level, "log-level", "info", "log `LEVEL`: trace, debug, info, warn or error")
	fs.StringVar(&f.log.Format, "log-format", "text", "log `FORMAT`: text or json")
	fs.BoolVar(&f.log.Time, "log-time", true, "start each log line with the time (false: leave it to journald)")
	fs.DurationVar(&cfg.StartTimeout, "start-timeout", cfg.StartTimeout, "give each plugin process up to `D` to start and answer its handshake (a Python plugin needs ~250ms of CPU; raise it on a slow machine)")
	fs.DurationVar(&cfg.DrainTimeout, "drain-timeout", cfg.DrainTimeout, "on SIGINT or SIGTERM, give open connections up to `D` to finish")
	fs.IntVar(&cfg.Backlog, "backlog", cfg.Backlog, "each TCP listener's accept queue of `N` connections, where clients wait while a plugin restarts (capped by net.core.somaxconn)")
	fs.IntVar(&cfg.UDPReadBuffer, "udp-read-buffer", 0, "UDP sockets' kernel receive buffer in `BYTES`, where datagrams wait while a plugin restarts (0: system default)")
	fs.IntVar(&cfg.UDPWriteBuffer, "udp-write-buffer", 0, "UDP sockets' kernel send buffer in `BYTES` (0: system default)")
	fs.IntVar(&cfg.CrashLimit, "crash-limit", cfg.CrashLimit, "mark a plugin failed after `N` crashes within --crash-window")
	fs.DurationVar(&cfg.CrashWindow, "crash-window", cfg.CrashWindow, "the window `D` of --crash-limit")
	fs.DurationVar(&cfg.BackoffMax, "restart-backoff-max", cfg.BackoffMax, "wait at most `D` before restarting a crashed plugin (the backoff starts at 5ms and doubles)")
	fs.StringVar(&cfg.Handoff, "handoff", cfg.Handoff, "how TCP connections reach a plugin, `MODE`: listener (the plugin accepts on the host's shared listening socket; a plugin without feature listener, or with rules and without feature rules, gets conn) or conn (the host accepts each connection and passes it)")
	fs.DurationVar(&cfg.HealthInterval, "health-interval", cfg.HealthInterval, "ask each plugin for its health every `D` (0: never); one that misses two answers in a row is taken for frozen, killed and restarted")
	fs.DurationVar(&cfg.HealthTimeout, "health-timeout", cfg.HealthTimeout, "wait `D` for each health answer")
	fs.BoolVar(&cfg.Standby, "standby", cfg.Standby, "keep a started, configured spare process of each plugin, which takes over at once when the serving one dies")
	fs.StringArrayVar(&f.rules.Allow, "allow", nil, "accept plugin NAME's clients only from these networks: `NAME=CIDR[,CIDR...]` (NAME * for every plugin; IPv4 or IPv6; repeatable)")
	fs.StringArrayVar(&f.rules.Deny, "deny", nil, "refuse plugin NAME's clients from these networks, even if allowed: `NAME=CIDR[,CIDR...]` (repeatable)")
	fs.StringArrayVar(&f.rules.MaxConns, "max-conns", nil, "TCP: at most N connections open at once to plugin NAME, `NAME=N`; more are closed at once")
	fs.StringArrayVar(&f.rules.MaxPerSource, "max-per-source", nil, "TCP: at most N connections open at once from one source address (IPv6: one /64), `NAME=N`")
	fs.StringArrayVar(&f.rules.RatePerSource, "rate-per-source", nil, "new connections (UDP: datagrams) per source, a token bucket: `NAME=RATE[/s|/m][:BURST]` (burst: the rate per second, at least 1)")
	fs.StringArrayVar(&f.rules.ProxyProtocol, "proxy-protocol", nil, "trust PROXY protocol v1 and v2 headers from these proxies, which must send one: `NAME=CIDR[,CIDR...]`; the client in the header is the one the rules and the plugin see")
	fs.StringVar(&cfg.StatusFile, "status-file", config.DefaultStatusFile(), "keep the plugins' state in `FILE` for 'sockplay status' (empty: nowhere); its directory must be this user's own, writable by no one else")
	fs.StringVar(&cfg.Admin, "admin", cfg.Admin, "serve the admin endpoint (web page, /metrics, /api) on `HOST:PORT`; off disables it; outside loopback it needs --admin-token")
	fs.StringVar(&cfg.AdminToken, "admin-token", "", "require `TOKEN` of every admin request (Authorization: Bearer TOKEN)")
	fs.StringArrayVar(&cfg.Trace, "trace", nil, "trace plugin `NAME`: it sends the first --trace-bytes of each connection each way, and of each datagram, to the page and 'sockplay trace' (repeatable; shows passwords too)")
	fs.IntVar(&cfg.TraceBytes, "trace-bytes", cfg.TraceBytes, "trace the first `N` bytes of each direction of a connection, and of each datagram")
	fs.BoolVar(&cfg.LogConns, "log-conns", false, "log one line per closed connection: plugin, peer, duration, bytes, reason (xinetd's log_on_success and log_on_failure)")
	return cmd
}

func runServe(cmd *cobra.Command, cfg config.Config, f serveFlags, s Streams) error {
	cfg.SearchPath = os.Getenv("PATH")
	var err error
	if cfg.Listen, err = config.ParseListen(f.listens); err != nil {
		return UsageError{err}
	}
	if cfg.Set, err = config.ParseSet(f.sets); err != nil {
		return UsageError{err}
	}
	if cfg.Rules, cfg.Origin, err = config.ParseRules(f.rules); err != nil {
		return UsageError{err}
	}
	if f.check && f.config == "" {
		return usagef("--check checks a --config FILE: give one")
	}
	base, baseLog := cloneConfig(cfg), f.log // the flags alone, for a reload
	if f.config != "" {
		if err := applyFile(cmd, &cfg, &f); err != nil {
			return err
		}
	}
	if cfg.PluginDir == "" {
		cfg.PluginDir = defaultPluginDir()
	}
	if f.check {
		if err := serve.Check(cfg); err != nil {
			return err
		}
		fmt.Fprintf(s.Out, "%s: ok\n", f.config)
		return nil
	}
	// The log never holds the host up: a stalled reader costs log lines,
	// counted and reported once it reads again, never a restart or a stop.
	errOut := newNonBlocking(s.Err)
	defer errOut.Close(logFlushTimeout)
	logOut := newGate(errOut)
	log, err := newLogger(f.log.Level, f.log.Format, f.log.Time, logOut)
	if err != nil {
		return err
	}
	errOut.onDropped(func(n uint64) {
		log.Warn("the log output was blocked (nobody read it); lines dropped meanwhile", "dropped", n)
	})
	defer captureStdLogs(log)()
	cfg.LogLevel = log.GetLevel()
	cfg.LogJSON = f.log.Format == "json"

	// Socket activation: the sockets systemd passed, named after their
	// plugins. Sockets unsets LISTEN_*, so no plugin inherits them.
	if cfg.Sockets, err = systemd.Sockets(); err != nil {
		return err
	}

	// Signals are caught before the plugins start: a SIGHUP's default action
	// would end the host, and a stop that comes during the start is kept.
	stop, now, release := stopContexts(cmd.Context())
	defer release()
	hup := catchSIGHUP()
	h, err := serve.Start(cmd.Context(), cfg, s.Out, log)
	if err != nil {
		signal.Stop(hup)
		logOut.Discard()
		return err
	}
	defer forward(hup, h.RequestReload)()
	if err := logOut.Open(); err != nil {
		_ = h.Close()
		return err
	}
	if f.config != "" {
		// A reload reads the file again, under the same flags.
		h.SetReloader(func() (config.Config, error) {
			c, fl := cloneConfig(base), f
			fl.log = baseLog
			if err := applyFile(cmd, &c, &fl); err != nil {
				return c, err
			}
			if c.PluginDir == "" {
				c.PluginDir = defaultPluginDir()
			}
			return c, c.Validate()
		})
	}
	sd := systemd.NewNotifier(log.Named("systemd"))
	h.SetNotify(sd.Notify)
	sd.Notify(systemd.Ready)
	ctx, stopWatchdog := context.WithCancel(cmd.Context())
	var wg sync.WaitGroup
	wg.Go(func() { sd.Watchdog(ctx) })
	defer wg.Wait()
	defer stopWatchdog()
	if err := h.Run(stop); err != nil {
		return err
	}
	log.Info("stopping: draining connections", "signal", signalName(stop), "drain_timeout", cfg.DrainTimeout)
	return h.Stop(now)
}

// cloneConfig copies c's maps, which a config file's Apply fills in.
func cloneConfig(c config.Config) config.Config {
	c.Listen = maps.Clone(c.Listen)
	c.Origin = maps.Clone(c.Origin)
	c.Rules = maps.Clone(c.Rules)
	set := map[string]map[string]string{}
	for k, v := range c.Set {
		set[k] = maps.Clone(v)
	}
	c.Set = set
	c.Enable = slices.Clone(c.Enable)
	return c
}

// applyFile reads the --config file into cfg and f's log settings, under the
// flags given on the command line.
func applyFile(cmd *cobra.Command, cfg *config.Config, f *serveFlags) error {
	file, err := config.LoadFile(f.config)
	if err != nil {
		return err
	}
	if err := file.Apply(cfg, &f.log, cmd.Flags().Changed); err != nil {
		return err
	}
	if abs, err := filepath.Abs(f.config); err == nil {
		cfg.ConfigFile = abs
	}
	return nil
}

// defaultPluginDir is the directory of the sockplay binary itself, where
// `make build` and `make install` put the plugins.
func defaultPluginDir() string {
	exe, err := os.Executable()
	if err != nil {
		return "."
	}
	if resolved, err := filepath.EvalSymlinks(exe); err == nil {
		exe = resolved
	}
	return filepath.Dir(exe)
}
