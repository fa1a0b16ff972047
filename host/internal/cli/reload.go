package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sockplay/sockplay/host/internal/config"
	"github.com/sockplay/sockplay/host/internal/serve"
	"github.com/sockplay/sockplay/sdk/escape"
)

func init() { register(reloadCommand) }

func reloadCommand(s Streams) *cobra.Command {
	var path string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "reload [NAME...]",
		Short: "replace the running host's plugins by their rebuilt binaries, refusing no client",
		Long: `Reload asks the running host (the one that writes --status-file, as for
'sockplay status') to replace plugin processes by new processes of their
binaries as they are on disk now. For each plugin the host starts and
configures the new process while the old one serves, hands it the listener,
then drains the old process: its open connections get up to the host's
--drain-timeout to finish. No client is refused and no open connection is
cut. A new binary that fails to start or to configure is reported with its
own message, and the old process serves on.

With NAMEs, each named plugin is replaced whether its binary changed or not
(a graceful restart); a named plugin the host does not serve yet but finds
in its --plugin-dir is started, and a named plugin that crash-looped into
the failed state is started again on its address. Without, it does what SIGHUP to the host
does: a host started with --config reads the file again and applies changed
rules at once and changed options by replacing those plugins (a file it
cannot apply changes nothing, and is this command's error); then every
plugin whose binary's SHA-256 changed is replaced and the others are left
alone.

It prints one line per plugin: replaced (old and new pid, version and
SHA-256), unchanged, started, or failed and why; and exits 1 if any failed.
--json prints {"config": "reloaded", "config_error": "...", "results": [...]},
each result with plugin, outcome, old_pid, new_pid, old_version,
new_version, old_sha256, new_sha256, addr and error.

The host listens for it on a Unix socket beside its status file
(status.json: status.sock), mode 0600, whose path the status file records.`,
		Example: `  go build -o bin/sockplay-echo ./plugins/echo && sockplay reload echo
  sockplay reload                      # every plugin whose binary changed
  kill -HUP "$(jq .host_pid "$XDG_RUNTIME_DIR/sockplay/status.json")"   # the same`,
		RunE: func(cmd *cobra.Command, args []string) error {
			reply, err := serve.RequestReload(cmd.Context(), path, serve.ReloadRequest{Plugins: args})
			if err != nil {
				return err
			}
			results := reply.Results
			if asJSON {
				if reply.Results == nil {
					reply.Results = []serve.ReloadResult{}
				}
				if err := writeJSON(s.Out, reply); err != nil {
					return err
				}
			} else {
				switch {
				case reply.ConfigError != "":
					fmt.Fprintf(s.Out, "config: not applied: %s\n", reply.ConfigError)
				case reply.Config != "":
					fmt.Fprintf(s.Out, "config: %s\n", reply.Config)
				}
				if err := printReload(s.Out, results); err != nil {
					return err
				}
			}
			if reply.ConfigError != "" {
				return fmt.Errorf("the configuration was not applied: %s", reply.ConfigError)
			}
			return reloadFailed(results)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&path, "status-file", config.DefaultStatusFile(), "reload the host that writes `FILE`")
	fs.BoolVar(&asJSON, "json", false, "print JSON (see above)")
	return cmd
}

// printReload prints one line per plugin.
func printReload(w io.Writer, results []serve.ReloadResult) error {
	if len(results) == 0 {
		_, err := fmt.Fprintln(w, "no plugins served")
		return err
	}
	for _, r := range results {
		var line string
		switch r.Outcome {
		case serve.Replaced:
			line = fmt.Sprintf("%s: replaced: pid %d -> %d, version %s -> %s, sha256 %s -> %s", r.Plugin,
				r.OldPid, r.NewPid, r.OldVersion, r.NewVersion, short(r.OldSHA256), short(r.NewSHA256))
		case serve.Unchanged:
			line = fmt.Sprintf("%s: unchanged (pid %d, version %s, sha256 %s)", r.Plugin, r.OldPid, r.OldVersion, short(r.OldSHA256))
		case serve.Started:
			line = fmt.Sprintf("%s: started: pid %d, version %s, on %s", r.Plugin, r.NewPid, r.NewVersion, r.Addr)
		default:
			line = fmt.Sprintf("%s: %s: %s", r.Plugin, r.Outcome, r.Error)
			if r.OldPid != 0 {
				line += fmt.Sprintf(" (pid %d serves on)", r.OldPid)
			}
		}
		if _, err := fmt.Fprintln(w, escape.String(line)); err != nil { // versions and errors are the plugins'
			return err
		}
	}
	return nil
}

// reloadFailed is the one error line of a reload in which plugins failed.
func reloadFailed(results []serve.ReloadResult) error {
	var failed []string
	for _, r := range results {
		if r.Outcome == serve.Failed {
			failed = append(failed, r.Plugin)
		}
	}
	if len(failed) == 0 {
		return nil
	}
	return fmt.Errorf("reload failed for %s (see above); what served before serves on", strings.Join(failed, ", "))
}

// short abbreviates a SHA-256 as git does a commit's.
func short(sum string) string {
	if len(sum) > 12 {
		return sum[:12]
	}
	return sum
}
