package serve

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/sockplay/sockplay/host/internal/supervisor"
)

// StatusReport is what the host writes to its status file on every change of
// a plugin's state, and what `sockplay status` reads.
type StatusReport struct {
	HostPid int                 `json:"host_pid"`
	Updated time.Time           `json:"updated"`
	Stopped bool                `json:"stopped"`
	Plugins []supervisor.Status `json:"plugins"`
}

// writeStatus replaces the status file atomically.
func (h *Host) writeStatus(stopped bool) {
	if h.cfg.StatusFile == "" {
		return
	}
	h.statusMu.Lock()
	defer h.statusMu.Unlock()
	r := StatusReport{HostPid: os.Getpid(), Updated: time.Now().UTC(), Stopped: stopped, Plugins: h.Status()}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		h.log.Error("status file", "error", err)
		return
	}
	if err := writeFileAtomic(h.cfg.StatusFile, append(b, '\n')); err != nil {
		h.log.Error("status file", "path", h.cfg.StatusFile, "error", err)
	}
}

func writeFileAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".status-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// PrintStatus is `sockplay status`: it reads the status file and prints a
// table of the plugins and their states.
func PrintStatus(path string, out io.Writer) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no status at %s: is a host running? (sockplay serve --status-file sets the path)", path)
	}
	if err != nil {
		return err
	}
	var r StatusReport
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("status file %s: %w", path, err)
	}
	switch {
	case r.Stopped:
		fmt.Fprintf(out, "host (pid %d) stopped at %s; its last status:\n", r.HostPid, r.Updated.Format(time.RFC3339))
	case syscall.Kill(r.HostPid, 0) != nil:
		fmt.Fprintf(out, "host (pid %d) is gone (it did not stop cleanly); its last status, of %s:\n", r.HostPid, r.Updated.Format(time.RFC3339))
	default:
		fmt.Fprintf(out, "host pid %d, updated %s\n", r.HostPid, r.Updated.Format(time.RFC3339))
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVERSION\tTRANSPORT\tADDRESS\tSTATE\tPID\tSTANDBY\tRESTARTS\tLAST EXIT\tERROR")
	for _, p := range r.Plugins {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", p.Name, p.Version, p.Transport, p.Addr, p.State,
			pidOrDash(p.Pid), pidOrDash(p.StandbyPid), p.Restarts, dash(p.LastExit), dash(p.Error))
	}
	return tw.Flush()
}

func pidOrDash(pid int) string {
	if pid <= 0 {
		return "-"
	}
	return fmt.Sprint(pid)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
