// Command sockplay is the host of the sockplay socket playground: it owns
// every listener, runs each protocol plugin (sockplay-NAME) as its own process
// under supervision, and hands it the connections it accepts.
//
//	sockplay serve [--enable a,b] [--listen NAME=HOST:PORT] [--set NAME.KEY=VALUE] ...
//	sockplay plugins [--plugin-dir DIR]
//	sockplay version
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/pflag"

	"github.com/sockplay/sockplay/host/internal/config"
	"github.com/sockplay/sockplay/host/internal/serve"
	"github.com/sockplay/sockplay/sdk/protocol"
)

// Version is the host's version.
const Version = "0.1.0"

const usage = `sockplay %s: a plugin-based socket playground

Usage:
  sockplay serve [flags]     serve every plugin found (or --enable some) on loopback
  sockplay plugins [flags]   list the plugins found, and what was skipped
  sockplay status [flags]    show the running host's plugins: state, pid, restarts, errors
  sockplay version           print the version
Run 'sockplay COMMAND --help' for a command's flags.
`

func main() {
	err := run(os.Args[1:], os.Stdout, os.Stderr)
	var ue usageError
	switch {
	case err == nil:
	case errors.As(err, &ue):
		fmt.Fprintf(os.Stderr, "sockplay: %v\n", err)
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "sockplay: %v\n", err)
		os.Exit(1)
	}
}

type usageError struct{ error }

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintf(stderr, usage, Version)
		return usageError{errors.New("no command")}
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		return runServe(rest, stdout, stderr)
	case "plugins":
		return runPlugins(rest, stdout, stderr)
	case "status":
		return runStatus(rest, stdout, stderr)
	case "version", "--version":
		fmt.Fprintf(stdout, "sockplay %s (plugin protocol %d)\n", Version, protocol.Version)
		return nil
	case "help", "--help", "-h":
		fmt.Fprintf(stdout, usage, Version)
		return nil
	default:
		return usageError{fmt.Errorf("unknown command %q (commands: serve, plugins, status, version)", cmd)}
	}
}

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

func newFlags(name string, stderr io.Writer) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.SortFlags = false
	return fs
}

func parseFlags(fs *pflag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}

func runServe(args []string, stdout, stderr io.Writer) error {
	cfg := config.Default()
	fs := newFlags("serve", stderr)
	fs.StringVar(&cfg.PluginDir, "plugin-dir", defaultPluginDir(), "where to find sockplay-NAME plugin binaries")
	fs.StringSliceVar(&cfg.Enable, "enable", nil, "serve only these plugins (comma-separated; default: every plugin found)")
	listens := fs.StringArray("listen", nil, "NAME=HOST:PORT: serve plugin NAME there instead of its default address (repeatable)")
	sets := fs.StringArray("set", nil, "NAME.KEY=VALUE: set option KEY of plugin NAME (repeatable)")
	level := fs.String("log-level", "info", "trace, debug, info, warn or error")
	format := fs.String("log-format", "text", "text or json")
	fs.DurationVar(&cfg.DrainTimeout, "drain-timeout", cfg.DrainTimeout, "on SIGINT/SIGTERM, how long connections get to finish")
	fs.IntVar(&cfg.Backlog, "backlog", cfg.Backlog, "each TCP listener's accept queue: clients wait there while a plugin restarts")
	fs.IntVar(&cfg.UDPReadBuffer, "udp-read-buffer", 0, "UDP sockets' kernel receive buffer in bytes (0: system default)")
	fs.IntVar(&cfg.UDPWriteBuffer, "udp-write-buffer", 0, "UDP sockets' kernel send buffer in bytes (0: system default)")
	fs.IntVar(&cfg.CrashLimit, "crash-limit", cfg.CrashLimit, "a plugin that crashes this many times ...")
	fs.DurationVar(&cfg.CrashWindow, "crash-window", cfg.CrashWindow, "... within this window is marked failed")
	fs.DurationVar(&cfg.BackoffMax, "restart-backoff-max", cfg.BackoffMax, "the longest wait before restarting a crashed plugin")
	fs.StringVar(&cfg.Handoff, "handoff", cfg.Handoff, "how TCP connections reach a plugin: conn (the host accepts each and passes it) or listener (the plugin accepts on the host's shared listening socket)")
	fs.BoolVar(&cfg.Standby, "standby", false, "keep a configured spare process of each plugin, which takes over at once when the serving one dies")
	fs.StringVar(&cfg.StatusFile, "status-file", config.DefaultStatusFile(), "where to keep the plugins' state for 'sockplay status' (empty: nowhere)")
	help := fs.BoolP("help", "h", false, "show this help")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *help {
		fmt.Fprintln(stdout, "Usage: sockplay serve [flags]")
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return nil
	}
	var err error
	if cfg.Listen, err = config.ParseListen(*listens); err != nil {
		return usageError{err}
	}
	if cfg.Set, err = config.ParseSet(*sets); err != nil {
		return usageError{err}
	}
	log, err := newLogger(*level, *format, stderr)
	if err != nil {
		return usageError{err}
	}
	cfg.LogLevel = log.GetLevel()
	cfg.LogJSON = *format == "json"

	signals := make(chan os.Signal, 2)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(signals)
	return serve.Run(cfg, signals, stdout, log)
}

func runPlugins(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("plugins", stderr)
	dir := fs.String("plugin-dir", defaultPluginDir(), "where to find sockplay-NAME plugin binaries")
	level := fs.String("log-level", "error", "trace, debug, info, warn or error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, err := newLogger(*level, "text", stderr)
	if err != nil {
		return usageError{err}
	}
	return serve.List(context.Background(), *dir, stdout, log)
}

func runStatus(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("status", stderr)
	path := fs.String("status-file", config.DefaultStatusFile(), "the status file of the host to show")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	return serve.PrintStatus(*path, stdout)
}

func newLogger(level, format string, w io.Writer) (hclog.Logger, error) {
	lv := hclog.LevelFromString(level)
	if lv == hclog.NoLevel {
		return nil, fmt.Errorf("--log-level %q: want trace, debug, info, warn or error", level)
	}
	if format != "text" && format != "json" {
		return nil, fmt.Errorf("--log-format %q: want text or json", format)
	}
	return hclog.New(&hclog.LoggerOptions{
		Name: "sockplay", Level: lv, Output: w, JSONFormat: format == "json",
		Color: hclog.ColorOff, DisableTime: false, TimeFormat: "15:04:05.000",
	}), nil
}
