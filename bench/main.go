// Command bench is sockplay's data-path benchmark (`make bench`): it starts
// the real host with the echo plugin, a plain Go echo server in its own
// process and, when installed, xinetd and tcpserver, measures them in turn
// over loopback and prints medians and ratios. See BENCHMARKS.md.
//
//	bench [--rounds N] [--duration D] [--scenario NAME]... [--format text|json]
//	bench direct-server   (the direct server; the bench runs it itself)
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/sockplay/sockplay/bench/internal/load"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "direct-server" {
		return load.ServeDirect(ctx, stdin, stdout)
	}
	cfg := load.DefaultConfig()
	fs := pflag.NewFlagSet("bench", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.SortFlags = false
	fs.StringVar(&cfg.BinDir, "bin", cfg.BinDir, "directory with sockplay and sockplay-echo (make build)")
	fs.IntVar(&cfg.Rounds, "rounds", cfg.Rounds, "rounds: every measurement runs once per round against each server in turn")
	fs.DurationVar(&cfg.Params.Duration, "duration", cfg.Params.Duration, "length of one measurement")
	fs.IntVar(&cfg.Params.MaxOps, "max-ops", cfg.Params.MaxOps, "at most this many operations per connection per measurement")
	fs.IntVar(&cfg.Params.Conns, "conns", cfg.Params.Conns, "connections of the many-connections ping-pong")
	fs.IntVar(&cfg.Params.Clients, "clients", cfg.Params.Clients, "clients of the connection-rate and UDP-rate measurements")
	fs.StringSliceVar(&cfg.Scenarios, "scenario", nil, "run only these: pingpong, bulk, conns64, connrate, udp-pingpong, udp-rate, restart (default all), and scale-conns, scale-plugins (only when named)")
	fs.IntVar(&cfg.Restart.Kills, "kills", cfg.Restart.Kills, "restart: kill -9 the echo plugin this many times, each past the crash window (0: skip)")
	fs.DurationVar(&cfg.Restart.CrashWindow, "crash-window", cfg.Restart.CrashWindow, "restart: the host's --crash-window; kills are this plus 0.3s apart, so each is a first crash")
	fs.BoolVar(&cfg.Classic, "classic", cfg.Classic, "compare with xinetd and tcpserver when installed")
	fs.BoolVar(&cfg.InProc, "inproc", cfg.InProc, "also measure the direct server inside the bench process")
	fs.BoolVar(&cfg.UDP, "udp", cfg.UDP, "run the UDP scenarios when sockplay-udpecho is built")
	fs.BoolVar(&cfg.Python, "python", cfg.Python, "also measure the Python examples sockplay-pyecho and sockplay-pyudpecho through a host of their own (target python; --python=false skips)")
	fs.BoolVar(&cfg.Rules, "rules", cfg.Rules, "also measure echo with an allow list, a per-source limit and a per-source rate (target rules; --handoff listener unless a --host-arg says otherwise)")
	fs.IntSliceVar(&cfg.ScaleConns, "scale-conns", cfg.ScaleConns, "scale-conns: the numbers of connections at once")
	fs.IntSliceVar(&cfg.ScalePlugins, "scale-plugins", cfg.ScalePlugins, "scale-plugins: the numbers of plugins one host serves")
	fs.StringVar(&cfg.PluginCopies, "plugin-copies", "", "scale-plugins: `DIR` with sockplay-echo01, -echo02, ... (scripts/bench-scale.sh builds them)")
	fs.IntVar(&cfg.MemoryConns, "memory-conns", cfg.MemoryConns, "idle connections of the memory check (0: skip it)")
	fs.StringArrayVar(&cfg.HostArgs, "host-arg", nil, "an extra argument for sockplay serve, such as --host-arg=--handoff=listener (repeatable)")
	fs.StringArrayVar(&cfg.HostEnv, "host-env", nil, "KEY=VALUE for the host's (and so the plugins') environment, for experiments (repeatable)")
	restartLog := fs.String("restart-log", "", "restart: append the restart host's log to `FILE` (with --host-arg=--log-level=trace it times each start)")
	format := fs.String("format", "text", "text or json")
	quiet := fs.BoolP("quiet", "q", false, "no progress lines on stderr")
	help := fs.BoolP("help", "h", false, "show this help")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *help {
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return nil
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *format != "text" && *format != "json" {
		return fmt.Errorf("--format %q: want text or json", *format)
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cfg.DirectCmd = []string{exe, "direct-server"}
	if *restartLog != "" {
		f, err := os.OpenFile(*restartLog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		cfg.Restart.Log = f
	}
	if !*quiet {
		cfg.Progress = stderr
	}
	rep, err := load.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if *format == "json" {
		err = rep.WriteJSON(stdout)
	} else {
		err = rep.WriteText(stdout)
	}
	if err != nil {
		return err
	}
	if len(rep.Errors) > 0 {
		return errors.New("some measurements failed (see the errors above)")
	}
	return nil
}
