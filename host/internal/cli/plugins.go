package cli

import (
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sockplay/sockplay/host/internal/catalog"
	"github.com/sockplay/sockplay/host/internal/serve"
)

func init() { register(pluginsCommand) }

func pluginsCommand(s Streams) *cobra.Command {
	var dir, level string
	var asJSON, wide bool
	cmd := &cobra.Command{
		Use:   "plugins",
		Short: "list the plugins found, and what was skipped",
		Long: `Plugins lists the plugin binaries (executables named sockplay-NAME) in
--plugin-dir and then in $PATH, as git and kubectl find theirs; a name found
earlier hides the same name later. Each is started just long enough to ask
what it is. Files named like a plugin that are not usable are listed after
the table with the reason.

--json prints {"plugins": [...], "skipped": [...]}; each plugin has name,
version, protocol, summary, transport, default_addr, features, path, source
("plugin-dir" or "PATH") and sha256; each skipped file has path and reason.
The names it shares with 'sockplay status --json' (name, version,
transport) mean the same there; features lists the optional parts of the
plugin contract the plugin implements: "events" (it reports its
connections to the host), "trace", "listener", "rules", "handoff-ack".`,
		Example: `  sockplay plugins
  sockplay plugins --wide                 # with protocol, features and SHA-256
  sockplay plugins --plugin-dir ./bin --json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				dir = defaultPluginDir()
			}
			log, err := newLogger(level, "text", true, s.Err)
			if err != nil {
				return err
			}
			infos, skipped, err := serve.Discover(cmd.Context(), dir, os.Getenv("PATH"), log)
			if err != nil {
				return err
			}
			if asJSON {
				if infos == nil {
					infos = []serve.PluginInfo{}
				}
				if skipped == nil {
					skipped = []catalog.Skipped{}
				}
				return writeJSON(s.Out, struct {
					Plugins []serve.PluginInfo `json:"plugins"`
					Skipped []catalog.Skipped  `json:"skipped"`
				}{infos, skipped})
			}
			t := table{
				header: []string{"NAME", "VERSION", "PROTOCOL", "TRANSPORT", "ADDRESS", "FEATURES", "SOURCE", "PATH", "SHA256"},
				narrow: []bool{true, true, false, true, true, false, true, true, false},
			}
			for _, p := range infos {
				t.add(p.Name, p.Version, itoa(p.Protocol), p.Transport, p.DefaultAddr, dash(strings.Join(p.Features, ",")), p.Source, p.Path, p.SHA256)
			}
			if err := t.write(s.Out, wide); err != nil {
				return err
			}
			for _, sk := range skipped {
				if _, err := s.Out.Write([]byte("skipped " + sk.Path + ": " + sk.Reason + "\n")); err != nil {
					return err
				}
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&dir, "plugin-dir", "", "look for sockplay-NAME binaries in `DIR` first (default: the sockplay binary's own directory)")
	fs.BoolVar(&asJSON, "json", false, "print JSON (see above)")
	fs.BoolVar(&wide, "wide", false, "print every column in full")
	fs.StringVar(&level, "log-level", "error", "log `LEVEL` of the plugins' start-up: trace, debug, info, warn or error")
	return cmd
}
