package serve

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/sockplay/sockplay/sdk/protocol/plog"
)

// StatusReport is what the host writes to its status file on every change of
// a plugin's state (and, at most once a second, of its counters), what
// `sockplay status` reads, and what the admin endpoint's /api/status serves.
// The schema is in the README ("See what is happening") and in `sockplay
// status --help`.
type StatusReport struct {
	HostPid int       `json:"host_pid"`
	Updated time.Time `json:"updated"`
	Stopped bool      `json:"stopped"`
	// Admin is the admin endpoint's URL ("" when it is off).
	Admin   string         `json:"admin,omitempty"`
	Plugins []PluginStatus `json:"plugins"`
	// PluginDir is where the host finds plugin binaries (absolute).
	PluginDir string `json:"plugin_dir,omitempty"`
	// Control is the path of the host's control socket, which `sockplay
	// reload` talks to (see RequestReload); "" when it has none.
	Control string `json:"control,omitempty"`
	// HostState is computed by ReadStatus, not stored: "running",
	// "stopped" (it stopped cleanly) or "gone" (it died without saying so).
	HostState string `json:"host_state,omitempty"`
}

// writeStatus replaces the status file atomically, once the host serves and
// while it holds the file's lock: a host that failed to start leaves the
// file as it was.
func (h *Host) writeStatus(stopped bool) {
	h.statusMu.Lock()
	defer h.statusMu.Unlock()
	if h.cfg.StatusFile == "" || h.lock == nil || !h.serving {
		return
	}
	r := h.report(stopped)
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		h.log.Error("status file", "error", err)
		return
	}
	err = writeFileAtomic(h.cfg.StatusFile, append(b, '\n'))
	h.statusFailing = statusWriteLog(h.log, &h.statusLim, h.statusFailing, h.cfg.StatusFile, err)
}

// statusWriteLog logs a failed status-file write (a full disk, EDQUOT, EIO)
// at WARN, at most once a minute with the count held back, since the host
// rewrites the file every second while counters move; the previous file
// stays whole (writeFileAtomic renames only a complete one), so `sockplay
// status` shows older figures, not a torn file. The first write that works
// again is logged at INFO. It returns whether the write failed.
func statusWriteLog(log hclog.Logger, lim *plog.Limiter, failing bool, path string, err error) bool {
	if err == nil {
		if failing {
			log.Info("status file written again", "path", path)
		}
		return false
	}
	lim.Every = time.Minute
	if ok, suppressed := lim.Allow(time.Now()); ok || !failing {
		log.Warn("status file not updated; the previous one stays", "path", path, "error", err, "suppressed", suppressed)
	}
	return true
}

// report is the host's status now.
func (h *Host) report(stopped bool) StatusReport {
	r := StatusReport{HostPid: os.Getpid(), Updated: time.Now().UTC(), Stopped: stopped, Plugins: h.Status(),
		PluginDir: absDir(h.cfg.PluginDir)}
	if h.obs.admin != nil {
		r.Admin = h.obs.admin.URL()
	}
	if !stopped {
		r.HostState = "running"
		r.Control = h.controlPath()
	}
	return r
}

func absDir(dir string) string {
	if abs, err := filepath.Abs(dir); err == nil {
		return abs
	}
	return dir
}

// writeFileAtomic replaces path with a file of b: a file made beside it
// (O_EXCL, which follows no link) and renamed over it. The directory is the
// status directory, checked when the host took the file's lock (statusdir.go);
// it is not made again if it went.
func writeFileAtomic(path string, b []byte) error {
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

// ReadStatus reads a status file.
func ReadStatus(path string) (StatusReport, error) {
	var r StatusReport
	b, err := readStatusFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return r, fmt.Errorf("no status at %s: is a host running? (sockplay serve --status-file sets the path)", path)
	}
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("status file %s: %w", path, err)
	}
	r.HostState = "running"
	switch {
	case r.Stopped:
		r.HostState = "stopped"
	case syscall.Kill(r.HostPid, 0) != nil:
		r.HostState = "gone"
	}
	return r, nil
}
