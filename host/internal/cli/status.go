package cli

import (
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/sockplay/sockplay/host/internal/config"
	"github.com/sockplay/sockplay/host/internal/serve"
)

func init() { register(statusCommand) }

func statusCommand(s Streams) *cobra.Command {
	var path string
	var asJSON, wide bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "show the running host's plugins: state, pid, restarts, errors",
		Long: `Status reads the status file a running 'sockplay serve' keeps up to date
(the same --status-file) and prints each plugin's state: running,
restarting, failed or stopped; its pid, restarts and last exit.

--json prints the status file's object: host_pid, updated (RFC 3339),
stopped, host_state ("running", "stopped" or "gone"), and plugins, each with
name, version, transport, addr, state, pid, restarts, last_exit, error and
standby_pid.`,
		Example: `  sockplay status
  sockplay status --json | jq '.plugins[] | {name, state}'
  sockplay status --status-file /run/sockplay/status.json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := serve.ReadStatus(path)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(s.Out, r)
			}
			updated := r.Updated.Format(time.RFC3339)
			switch r.HostState {
			case "stopped":
				fmt.Fprintf(s.Out, "host (pid %d) stopped at %s; its last status:\n", r.HostPid, updated)
			case "gone":
				fmt.Fprintf(s.Out, "host (pid %d) is gone (it did not stop cleanly); its last status, of %s:\n", r.HostPid, updated)
			default:
				fmt.Fprintf(s.Out, "host pid %d, updated %s\n", r.HostPid, updated)
			}
			t := table{
				header: []string{"NAME", "VERSION", "TRANSPORT", "ADDRESS", "STATE", "PID", "STANDBY", "RESTARTS", "LAST EXIT", "ERROR"},
				narrow: []bool{true, false, true, true, true, true, false, true, true, true},
			}
			for _, p := range r.Plugins {
				t.add(p.Name, p.Version, p.Transport, p.Addr, string(p.State), pidOrDash(p.Pid), pidOrDash(p.StandbyPid),
					itoa(p.Restarts), dash(p.LastExit), dash(p.Error))
			}
			return t.write(s.Out, wide)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&path, "status-file", config.DefaultStatusFile(), "read the status of the host that writes `FILE`")
	fs.BoolVar(&asJSON, "json", false, "print JSON (see above)")
	fs.BoolVar(&wide, "wide", false, "print every column in full")
	return cmd
}

func pidOrDash(pid int) string {
	if pid <= 0 {
		return "-"
	}
	return strconv.Itoa(pid)
}

func itoa(n int) string { return strconv.Itoa(n) }
