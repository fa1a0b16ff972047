package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sockplay/sockplay/host/internal/config"
	"github.com/sockplay/sockplay/host/internal/observe"
	"github.com/sockplay/sockplay/host/internal/serve"
	"github.com/sockplay/sockplay/sdk/escape"
)

func init() { register(traceCommand) }

func traceCommand(s Streams) *cobra.Command {
	var statusFile, adminAddr, token string
	var hexDump bool
	var count int
	cmd := &cobra.Command{
		Use:   "trace [NAME]",
		Short: "follow the bytes of the plugins in trace mode, as tcpdump -A does",
		Long: `Trace follows the trace records of the running host's plugins that it serves
in trace mode ('sockplay serve --trace NAME'), or of plugin NAME only, and
prints each as it comes, the way 'tcpdump -A' prints packets: a line with
the time, the plugin, the connection, the client's address and the
direction ("in": from the client, "out": to it), then the bytes as text,
with control characters and bytes that are not UTF-8 escaped (\n, \r,
\x1b, \xff), or with --hex as a hex dump. A trace holds the first
--trace-bytes of each direction of every connection, and the start of
every datagram.

A trace shows everything clients send: a trace of login shows the
passwords they send.

It reads from the host's admin endpoint, found through the status file
(--status-file, as 'sockplay status' does) or given with --admin. It runs
until Ctrl-C, until --count records, or until the host stops.`,
		Example: `  sockplay serve --trace echo &      # then, in another terminal:
  sockplay trace echo
  sockplay trace --hex --count 10
  sockplay trace --admin 127.0.0.1:12380`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usagef("trace: want at most one plugin NAME, got %q", args)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			base, err := adminURL(adminAddr, statusFile)
			if err != nil {
				return err
			}
			return followTrace(cmd.Context(), s, base, token, name, hexDump, count)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&statusFile, "status-file", config.DefaultStatusFile(), "find the admin endpoint in the status `FILE` of the running host")
	fs.StringVar(&adminAddr, "admin", "", "read from the admin endpoint at `HOST:PORT` instead")
	fs.StringVar(&token, "admin-token", "", "send `TOKEN` as the bearer token (the host's --admin-token)")
	fs.BoolVar(&hexDump, "hex", false, "print the bytes as a hex dump with offsets")
	fs.IntVarP(&count, "count", "c", 0, "exit after `N` records (0: follow until stopped)")
	return cmd
}

// adminURL is the admin endpoint's base URL: from --admin, or from the
// status file of the running host.
func adminURL(addr, statusFile string) (string, error) {
	if addr != "" {
		if err := config.CheckAdmin(addr, "token: any address may be asked"); err != nil || addr == config.AdminOff {
			return "", usagef("--admin %q: want HOST:PORT", addr)
		}
		return "http://" + addr + "/", nil
	}
	r, err := serve.ReadStatus(statusFile)
	if err != nil {
		return "", err
	}
	if r.HostState != "running" {
		return "", fmt.Errorf("the host (pid %d) in %s is %s", r.HostPid, statusFile, r.HostState)
	}
	if r.Admin == "" {
		return "", fmt.Errorf("the host (pid %d) serves no admin endpoint (it runs with --admin off)", r.HostPid)
	}
	return r.Admin, nil
}

func followTrace(ctx context.Context, s Streams, base, token, name string, hexDump bool, count int) error {
	u := base + "api/trace"
	if name != "" {
		u += "?plugin=" + url.QueryEscape(name)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	// No overall timeout: the stream lasts; connecting is bounded.
	client := &http.Client{Transport: &http.Transport{ResponseHeaderTimeout: 10 * time.Second}}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("trace: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("trace: %s: %s", u, strings.TrimSpace(string(msg)))
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 8<<20)
	var kind string
	n := 0
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			kind = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: ") && kind == "hello":
			what := "every plugin in trace mode"
			if name != "" {
				what = name
			}
			fmt.Fprintf(s.Err, "sockplay trace: following %s at %s\n", what, base)
			var hello struct {
				Traced *[]string `json:"traced"` // nil from a host that does not say
			}
			if json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &hello) == nil && hello.Traced != nil {
				switch {
				case name == "" && len(*hello.Traced) == 0:
					fmt.Fprintf(s.Err, "sockplay trace: no plugin is in trace mode: nothing will come (start the host with --trace NAME)\n")
				case name != "" && !slices.Contains(*hello.Traced, name):
					fmt.Fprintf(s.Err, "sockplay trace: %s is not in trace mode: nothing will come (start the host with --trace %s)\n", name, name)
				}
			}
		case strings.HasPrefix(line, "data: ") && kind == "trace":
			var t observe.Trace
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &t); err != nil {
				return fmt.Errorf("trace: a record: %w", err)
			}
			if _, err := io.WriteString(s.Out, formatTrace(t, hexDump)); err != nil {
				return err
			}
			n++
			if count > 0 && n >= count {
				return nil
			}
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("trace: %w", err)
	}
	return nil
}

// formatTrace prints one record as tcpdump -A prints a packet: a header
// line, then the bytes.
//
//	08:25:28.203411 echo conn 3 127.0.0.1:50412 in, 6 bytes at 0
//	hello\n
func formatTrace(t observe.Trace, hexDump bool) string {
	var b strings.Builder
	conn := fmt.Sprintf("conn %d", t.Conn)
	if t.Conn == 0 {
		conn = "datagram"
	}
	fmt.Fprintf(&b, "%s %s %s %s %s, %d bytes at %d\n", t.Time.Local().Format("15:04:05.000000"), t.Plugin, conn,
		t.Peer, t.Direction, len(t.Data), t.Offset)
	if hexDump {
		b.WriteString(hexLines(t.Data, t.Offset))
	} else {
		b.WriteString(escape.String(string(t.Data)) + "\n")
	}
	return b.String()
}

// hexLines is a hex dump, 16 bytes a line, each line with its offset in
// the stream, as hexdump -C and tcpdump -X print them.
func hexLines(data []byte, offset uint64) string {
	var b strings.Builder
	for i := 0; i < len(data); i += 16 {
		row := data[i:min(i+16, len(data))]
		fmt.Fprintf(&b, "%08x ", offset+uint64(i))
		for j := range 16 {
			if j == 8 {
				b.WriteByte(' ')
			}
			if j < len(row) {
				fmt.Fprintf(&b, " %02x", row[j])
			} else {
				b.WriteString("   ")
			}
		}
		b.WriteString("  |")
		for _, c := range row {
			if c >= 0x20 && c < 0x7f {
				b.WriteByte(c)
			} else {
				b.WriteByte('.')
			}
		}
		b.WriteString("|\n")
	}
	return b.String()
}
