package cli

import (
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/sockplay/sockplay/host/internal/config"
	"github.com/sockplay/sockplay/host/internal/observe"
	"github.com/sockplay/sockplay/host/internal/serve"
	"github.com/sockplay/sockplay/host/internal/supervisor"
)

func init() { register(statusCommand) }

// statusSchema documents the JSON of `status --json`, the status file and
// the admin endpoint's /api/status (README.md, "See what is happening").
const statusSchema = `--json prints the status file's object, the same as the admin endpoint's
GET /api/status:

  host_pid     the host's pid
  updated      when the host last wrote it (RFC 3339, UTC)
  stopped      true once the host stopped
  host_state   "running", "stopped" (it stopped cleanly) or "gone" (it died)
  admin        the admin endpoint's URL (absent when --admin off)
  plugin_dir   where the host finds plugin binaries
  control      the socket 'sockplay reload' talks to (absent once stopped)
  plugins      one object per plugin:
    name, version, transport ("tcp", "udp"), addr (HOST:PORT)
    state        "running", "restarting", "failed" or "stopped"
    pid, standby_pid   the serving and the spare process (absent: none)
    started      when the serving process started serving (RFC 3339)
    restarts     processes replaced after a death
    sha256       the SHA-256 of the binary serving
    replaced     processes replaced by a reload (reload, SIGHUP, dev)
    last_exit, error   how the last process ended; why the plugin failed
    events       "on", "no events" (the plugin does not report its
                 connections) or "starting"
    trace        true in trace mode
    conns_active, conns_total   TCP connections open now, and ever
    closed       closed connections by reason: eof (the client closed
                 first), reset, returned (the handler returned first),
                 drained, panic, error, exited (its process died)
    bytes_in, bytes_out   bytes from and to clients (TCP: the kernel's
                 count at each close; UDP: payloads)
    refused      refused clients by reason
    panics       handler panics
    datagrams_in, datagrams_out   UDP datagrams
    events_dropped   events the plugin dropped (the host read too slowly)

The counters cover every process of the plugin since the host started. The
host rewrites the file on every change of state and at most once a second
while counters change.`

func statusCommand(s Streams) *cobra.Command {
	var path string
	var asJSON, wide bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "show the running host's plugins: state, pid, restarts, connections, bytes",
		Long: `Status reads the status file a running 'sockplay serve' keeps up to date
(the same --status-file) and prints each plugin's state (running,
restarting, failed or stopped), pid, restarts and uptime, and its
connections: open now and in total, bytes in and out, refused clients and
handler panics. A plugin that does not report its connections shows
"no events". --wide adds the version, transport, standby pid, datagrams,
dropped events, last exit and error.

` + statusSchema,
		Example: `  sockplay status
  sockplay status --wide
  sockplay status --json | jq '.plugins[] | {name, state, conns_total, bytes_in}'
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
				admin := ""
				if r.Admin != "" {
					admin = ", page and metrics at " + r.Admin
				}
				fmt.Fprintf(s.Out, "host pid %d, updated %s%s\n", r.HostPid, updated, admin)
			}
			t := table{
				header: []string{"NAME", "VERSION", "TRANSPORT", "ADDRESS", "STATE", "PID", "STANDBY", "RESTARTS", "UPTIME",
					"OPEN", "TOTAL", "IN", "OUT", "REFUSED", "PANICS", "DATAGRAMS", "DROPPED", "LAST EXIT", "ERROR"},
				narrow: []bool{true, false, false, true, true, true, false, true, true,
					true, true, true, true, true, true, false, false, false, true},
			}
			for _, p := range r.Plugins {
				uptime := "-"
				if p.State == supervisor.Running && !p.Started.IsZero() && r.HostState == "running" {
					uptime = roundDuration(r.Updated.Sub(p.Started) + time.Since(r.Updated))
				}
				open, total, in, out, refused, panics, dgrams, dropped := counters(p)
				t.add(p.Name, p.Version, p.Transport, p.Addr, string(p.State), pidOrDash(p.Pid), pidOrDash(p.StandbyPid),
					itoa(p.Restarts), uptime, open, total, in, out, refused, panics, dgrams, dropped,
					dash(p.LastExit), dash(p.Error))
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

// counters are a plugin's counters as table cells; "no events" where the
// plugin reports none.
func counters(p serve.PluginStatus) (open, total, in, out, refused, panics, dgrams, dropped string) {
	u := func(n uint64) string { return strconv.FormatUint(n, 10) }
	if p.Events != observe.EventsOn {
		ev := dash(p.Events)
		return ev, "-", "-", "-", "-", "-", "-", "-"
	}
	open, total = strconv.FormatInt(p.ConnsActive, 10), u(p.ConnsTotal)
	if p.Transport == "udp" {
		open, total = "-", "-"
	}
	return open, total, byteSize(p.BytesIn), byteSize(p.BytesOut), u(p.RefusedTotal()), u(p.Panics),
		u(p.DatagramsIn) + "/" + u(p.DatagramsOut), u(p.EventsDropped)
}

// byteSize prints n bytes in IEC units: 512B, 1.5KiB, 20MiB.
func byteSize(n uint64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatUint(n, 10) + "B"
	}
	f, i := float64(n), 0
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB"}
	for f /= unit; f >= unit && i < len(units)-1; i++ {
		f /= unit
	}
	if f < 10 {
		return strconv.FormatFloat(f, 'f', 1, 64) + units[i]
	}
	return strconv.FormatFloat(f, 'f', 0, 64) + units[i]
}

// roundDuration prints d to the second (to the millisecond under 10 s).
func roundDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

func pidOrDash(pid int) string {
	if pid <= 0 {
		return "-"
	}
	return strconv.Itoa(pid)
}

func itoa(n int) string { return strconv.Itoa(n) }
