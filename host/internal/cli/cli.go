// Package cli is the sockplay command line: a cobra command tree (built on
// pflag) whose commands turn flags into a config.Config or arguments and call
// the packages that do the work. It is the one package of the host that reads
// flags and the environment.
//
// Every command has a one-line summary, a description, examples and its flags
// with their defaults; -h/--help prints them to stdout and exits 0 without
// running anything. Exit status: 0, 1 for an error, 2 for a usage error; an
// error is one line on stderr (a usage error's ends with a pointer to --help).
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sockplay/sockplay/sdk/cmdline"
)

// UsageError is an error in how the command line was written: exit status 2.
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

func usagef(format string, args ...any) error { return UsageError{fmt.Errorf(format, args...)} }

// Streams are where a command reads and writes.
type Streams struct {
	In       io.Reader
	Out, Err io.Writer
}

// Main runs the command line args (without the program name) and returns the
// exit status. A first argument that is no command of sockplay's but names a
// plugin runs that plugin's binary: `sockplay chat connect` is
// `sockplay-chat connect`.
func Main(ctx context.Context, args []string, s Streams) int {
	root := New(s)
	args = cmdline.NormalizeArgs(args)
	if path, ok := pluginCommand(root, args); ok {
		return runPlugin(ctx, path, args[1:], s)
	}
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return cmdline.ExitOK
	}
	var ue UsageError
	if errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command ") {
		printBounded(s.Err, fmt.Sprintf("sockplay: %v (see '%s --help')\n", err, cmd.CommandPath()))
		return cmdline.ExitUsage
	}
	printBounded(s.Err, fmt.Sprintf("sockplay: %v\n", err))
	return cmdline.ExitError
}

// printBounded writes the error line, waiting at most logFlushTimeout: a
// stderr nobody reads must not keep a stopped host from exiting.
func printBounded(w io.Writer, line string) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.WriteString(w, line)
	}()
	t := time.NewTimer(logFlushTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C: // the process exits; the write goes with it
	}
}

// New returns the root command. Commands added by other files register
// themselves in commands.
func New(s Streams) *cobra.Command {
	root := &cobra.Command{
		Use:   "sockplay",
		Short: "a plugin-based socket playground",
		Long: `sockplay is the host of the sockplay socket playground. It owns every TCP and
UDP listener, runs each protocol plugin (an executable named sockplay-NAME) as
its own process under supervision, and hands it the connections it accepts,
by file descriptor. A plugin that crashes is restarted while its listener
stays open; the others never notice.

Plugins are found in --plugin-dir (default: the directory of the sockplay
binary), then in $PATH. 'sockplay NAME ARGS...' runs sockplay-NAME ARGS...,
which is that protocol's client.`,
		Example: `  sockplay serve                       # every plugin found, on its default 127.0.0.1 address
  sockplay serve --enable echo,chat    # just these
  sockplay status                      # what the running host is doing
  sockplay chat connect --nick alice   # run sockplay-chat's client`,
		Version:           versionString(),
		SilenceErrors:     true,
		SilenceUsage:      true,
		CompletionOptions: cobra.CompletionOptions{},
	}
	root.SetVersionTemplate("{{.Version}}")
	root.SetIn(s.In)
	root.SetOut(s.Out)
	root.SetErr(s.Err)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return UsageError{err} })
	for _, c := range commands {
		root.AddCommand(c(s))
	}
	root.InitDefaultCompletionCmd() // `sockplay completion bash|zsh|fish|powershell`, listed in --help
	if comp, _, err := root.Find([]string{"completion"}); err == nil && comp != root {
		comp.Example = "  source <(sockplay completion bash)\n  sockplay completion fish > ~/.config/fish/completions/sockplay.fish"
		for _, sh := range comp.Commands() {
			sh.Example = "  sockplay completion " + sh.Name() + " > sockplay." + sh.Name()
		}
	}
	return root
}

// commands build the subcommands; each command's file adds its own.
var commands []func(Streams) *cobra.Command

func register(c func(Streams) *cobra.Command) { commands = append(commands, c) }

// noArgs refuses positional arguments as a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("%s: unexpected argument %q", cmd.Name(), args[0])
	}
	return nil
}
