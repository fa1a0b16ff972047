package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/sockplay/sockplay/sdk/protocol"
)

// Main runs the plugin and exits. Started by the sockplay host (which sets
// go-plugin's magic cookie) it serves the host; run by hand it runs the
// plugin's client command line.
func Main(p Plugin) {
	if err := p.Validate(); err != nil {
		fmt.Fprintf(os.Stderr, "sockplay-%s: %v\n", p.Name, err)
		os.Exit(2)
	}
	if os.Getenv(protocol.Handshake.MagicCookieKey) == protocol.Handshake.MagicCookieValue {
		os.Exit(servePlugin(&p))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := RunClient(ctx, &p, os.Args[1:], Stdio{In: os.Stdin, Out: os.Stdout, Err: os.Stderr})
	stop()
	os.Exit(code)
}

// RunClient runs p's command line with args and returns the exit status:
// --version and --help are answered here, the rest goes to p.Client. Main
// calls it; tests call it to run a client in-process.
func RunClient(ctx context.Context, p *Plugin, args []string, stdio Stdio) int {
	prog := "sockplay-" + p.Name
	if len(args) > 0 {
		switch args[0] {
		case "--version", "-version", "version":
			fmt.Fprintf(stdio.Out, "%s %s (sockplay protocol %d)\n", prog, p.Version, protocol.Version)
			return 0
		case "--help", "-h", "-help", "help":
			writeUsage(stdio.Out, p)
			return 0
		}
	}
	if len(args) == 0 || p.Client == nil {
		writeUsage(stdio.Err, p)
		return 2
	}
	err := p.Client(ctx, args, stdio)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrUsage):
		if msg := strings.TrimPrefix(err.Error(), ErrUsage.Error()); strings.TrimLeft(msg, ": ") != "" {
			fmt.Fprintf(stdio.Err, "%s: %s\n", prog, strings.TrimLeft(msg, ": "))
		}
		writeUsage(stdio.Err, p)
		return 2
	default:
		fmt.Fprintf(stdio.Err, "%s: %v\n", prog, err)
		return 1
	}
}

func writeUsage(w io.Writer, p *Plugin) {
	prog := "sockplay-" + p.Name
	fmt.Fprintf(w, "%s %s: %s\n\n", prog, p.Version, p.Summary)
	fmt.Fprintf(w, "Run by hand, %s is the %s client.\n\nUsage:\n", prog, p.Name)
	for _, line := range strings.Split(strings.TrimSpace(p.Usage), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			fmt.Fprintf(w, "  %s %s\n", prog, line)
		}
	}
	fmt.Fprintf(w, "  %s --help | --version\n", prog)
	fmt.Fprintf(w, "\nServed by the host (sockplay serve) on %s %s by default.\n", strings.ToUpper(string(p.Transport)), p.DefaultAddr)
	if len(p.Options) > 0 {
		fmt.Fprintf(w, "Options, set with sockplay serve --set %s.KEY=VALUE:\n", p.Name)
		for _, o := range p.Options {
			fmt.Fprintf(w, "  %-14s %s (default %q)\n", o.Name, o.Help, o.Default)
		}
	}
}
