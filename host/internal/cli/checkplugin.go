package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/sockplay/sockplay/host/internal/config"
	"github.com/sockplay/sockplay/host/internal/conformance"
)

func init() { register(checkPluginCommand) }

func checkPluginCommand(s Streams) *cobra.Command {
	var sets []string
	var verbose bool
	cmd := &cobra.Command{
		Use:   "check-plugin PATH",
		Short: "check a plugin binary, in any language, against the plugin contract",
		Long: `Check-plugin runs the plugin binary at PATH (named sockplay-NAME) the way the
host does and checks it against the plugin contract (sdk/protocol/SPEC.md),
printing one line per check: ok, FAIL (with why) or skip (an earlier check
failed). It exits 0 only if every check passes.

  handshake  go-plugin's handshake, AutoMTLS, gRPC
  describe   name, semantic version, transport, default address, options
  configure  an undeclared option is refused; the options given are accepted
  health     Health says serving once configured
  handoff    a connection (or, for UDP, the socket) handed over by descriptor
             is taken and served, never reset
  drain      Drain returns within its timeout and closes the connection
  exit       the process exits within 1 s after the host's end of the
             handoff socket closes
  cleanup    its socket directory is removed`,
		Example: `  sockplay check-plugin bin/sockplay-echo
  sockplay check-plugin bin/sockplay-pylogin --set accounts=testdata/accounts
  sockplay check-plugin ./sockplay-mine -v     # with the plugin's own log`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("check-plugin: want one PATH")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			set, err := config.ParseSet(prefixed(sets))
			if err != nil {
				return UsageError{err}
			}
			o := conformance.Options{Options: set["plugin"]}
			if verbose {
				if o.Log, err = newLogger("info", "text", true, s.Err); err != nil {
					return err
				}
			}
			ok, results := conformance.Run(cmd.Context(), args[0], o, s.Out)
			if !ok {
				failed := 0
				for _, r := range results {
					if r.Status == "FAIL" {
						failed++
					}
				}
				return errors.New(fmt.Sprintf("%s: %d of %d checks failed", args[0], failed, len(results)))
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringArrayVar(&sets, "set", nil, "set the plugin's option: `KEY=VALUE` (repeatable)")
	fs.BoolVarP(&verbose, "verbose", "v", false, "print the plugin's own log on stderr")
	return cmd
}

// prefixed turns KEY=VALUE into plugin.KEY=VALUE for config.ParseSet.
func prefixed(sets []string) []string {
	out := make([]string, len(sets))
	for i, s := range sets {
		out[i] = "plugin." + s
	}
	return out
}
