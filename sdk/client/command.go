package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sockplay/sockplay/sdk/cmdline"
	"github.com/sockplay/sockplay/sdk/protocol"
)

// Stdio is where a client command reads and writes.
type Stdio struct {
	In  io.Reader
	Out io.Writer
	Err io.Writer
}

// ErrUsage, returned (or wrapped) by a Command's Run, makes the command line
// print the error and a hint to --help, and exit with status 2.
var ErrUsage = errors.New("usage")

// Command is one client subcommand of a plugin binary run by hand:
// `sockplay-NAME COMMAND [flags] [ARGS]`. Flags may come anywhere on the
// line; `sockplay-NAME COMMAND --help` prints its help and exits 0.
//
// Flags and Run usually share variables of the function that builds the
// Command:
//
//	func sendCommand() client.Command {
//		var timeout time.Duration
//		return client.Command{
//			Name: "send", Args: "[ADDR]", MaxArgs: 1,
//			Summary: "send stdin lines as datagrams, print the replies",
//			Flags: func(fs *pflag.FlagSet) {
//				fs.DurationVar(&timeout, "timeout", 2*time.Second, "wait `D` for each reply")
//			},
//			Run: func(ctx context.Context, args []string, stdio client.Stdio) error { ... },
//		}
//	}
type Command struct {
	// Name is the subcommand, such as "connect".
	Name string
	// Args names the positional arguments for the usage line, such as
	// "[ADDR]" or "REMOTE [LOCAL]".
	Args string
	// Summary is one line for the command list.
	Summary string
	// Help is the longer description shown by --help (optional).
	Help string
	// Example holds example command lines, one per line (optional).
	Example string
	// MinArgs and MaxArgs bound the number of positional arguments; a
	// negative MaxArgs means no upper bound. Outside the bounds is a usage
	// error.
	MinArgs, MaxArgs int
	// Flags declares the command's flags (optional). A flag's help should
	// name its value in backquotes ("wait `D` for each reply"), which --help
	// shows instead of a type name.
	Flags func(fs *pflag.FlagSet)
	// Run runs the command with its positional arguments. ctx is cancelled
	// on SIGINT or SIGTERM. An error wrapping ErrUsage exits 2 with a hint
	// to --help; any other error is printed and exits 1.
	Run func(ctx context.Context, args []string, stdio Stdio) error
}

type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// Program is the command line of a plugin binary run by hand,
// `sockplay-NAME COMMAND ...`. sdk.Plugin's Client method makes it from the
// plugin's description.
type Program struct {
	// Name is the plugin's name: the program is sockplay-Name.
	Name string
	// Version is the plugin's version, printed by --version.
	Version string
	// Summary is one line about what the plugin serves.
	Summary string
	// Serving is the paragraph --help ends its description with: how the
	// host serves the plugin (its transport, default address and options).
	Serving string
	// Commands are the subcommands. Without any, --help says so and Run
	// with no arguments says how the host serves the plugin.
	Commands []Command
}

// Run runs prog's command line with args (without the program's name) and
// returns the exit status: cmdline.ExitOK, cmdline.ExitError for an error
// (printed as one line on stdio.Err), cmdline.ExitUsage for a usage error
// (one line and a pointer to --help). --help, -h, help and --version are
// answered here. sdk.Main calls it with a context that SIGINT and SIGTERM
// cancel; tests call it to run a client in-process.
func Run(ctx context.Context, p Program, args []string, stdio Stdio) int {
	prog := "sockplay-" + p.Name
	root := rootCommand(p, stdio)
	if len(args) == 0 {
		if len(p.Commands) == 0 {
			fmt.Fprintf(stdio.Err, "%s: this plugin has no client commands; it is served by the host (sockplay serve --enable %s)\n", prog, p.Name)
			return cmdline.ExitUsage
		}
		root.InitDefaultHelpCmd()
		root.InitDefaultHelpFlag()
		root.InitDefaultVersionFlag()
		root.SetOut(stdio.Err)
		_ = root.Help()
		return cmdline.ExitUsage
	}
	root.SetArgs(cmdline.NormalizeArgs(args))
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return cmdline.ExitOK
	}
	var ue usageError
	// cobra's own argument errors ("unknown command ...") are not typed.
	if errors.As(err, &ue) || errors.Is(err, ErrUsage) || strings.HasPrefix(err.Error(), "unknown command ") {
		msg := strings.TrimLeft(strings.TrimPrefix(err.Error(), ErrUsage.Error()), ": ")
		if msg == "" {
			msg = "usage error"
		}
		fmt.Fprintf(stdio.Err, "%s: %s (see '%s --help')\n", prog, msg, cmd.CommandPath())
		return cmdline.ExitUsage
	}
	fmt.Fprintf(stdio.Err, "%s: %v\n", prog, err)
	return cmdline.ExitError
}

func rootCommand(p Program, stdio Stdio) *cobra.Command {
	prog := "sockplay-" + p.Name
	root := &cobra.Command{
		Use:     prog,
		Short:   p.Summary,
		Long:    rootHelp(p),
		Version: p.Version,
		// Printing is ours: one line and a hint, exit status by kind.
		SilenceErrors:     true,
		SilenceUsage:      true,
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	root.SetVersionTemplate(fmt.Sprintf("%s {{.Version}} (sockplay protocol %d)\n", prog, protocol.Version))
	root.SetIn(stdio.In)
	root.SetOut(stdio.Out)
	root.SetErr(stdio.Err)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "print the plugin's version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s (sockplay protocol %d)\n", prog, p.Version, protocol.Version)
		},
	})
	for _, c := range p.Commands {
		root.AddCommand(c.cobra(stdio))
	}
	return root
}

func rootHelp(p Program) string {
	var b strings.Builder
	prog := "sockplay-" + p.Name
	fmt.Fprintf(&b, "%s %s: %s\n\n", prog, p.Version, p.Summary)
	if len(p.Commands) > 0 {
		fmt.Fprintf(&b, "Run by hand, %s is the %s client.\n", prog, p.Name)
	} else {
		fmt.Fprintf(&b, "%s has no client commands: it is a plugin, served by the host.\n", prog)
	}
	b.WriteString(p.Serving)
	return strings.TrimRight(b.String(), "\n")
}

func (c Command) cobra(stdio Stdio) *cobra.Command {
	use := c.Name
	if c.Args != "" {
		use += " " + c.Args
	}
	cc := &cobra.Command{
		Use:     use,
		Short:   c.Summary,
		Long:    strings.TrimSpace(c.Summary + "\n\n" + c.Help),
		Example: indent(c.Example),
		Args: func(cmd *cobra.Command, args []string) error {
			switch {
			case len(args) < c.MinArgs:
				return usageError{fmt.Errorf("%s: want %s", c.Name, argsPhrase(c))}
			case c.MaxArgs >= 0 && len(args) > c.MaxArgs:
				return usageError{fmt.Errorf("%s: unexpected argument %q (want %s)", c.Name, args[c.MaxArgs], argsPhrase(c))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if c.Run == nil {
				return errors.New(c.Name + ": not implemented")
			}
			return c.Run(cmd.Context(), args, stdio)
		},
	}
	if c.Flags != nil {
		c.Flags(cc.Flags())
	}
	return cc
}

func argsPhrase(c Command) string {
	if c.Args == "" {
		return "no arguments"
	}
	return c.Args
}

func indent(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = "  " + strings.TrimSpace(l)
	}
	return strings.Join(lines, "\n")
}
