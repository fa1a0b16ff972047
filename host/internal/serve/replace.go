package serve

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/sockplay/sockplay/host/internal/catalog"
	"github.com/sockplay/sockplay/host/internal/supervisor"
)

// ReloadRequest says which plugins ReplacePlugins replaces. ReplacePlugins
// is what every trigger of a binary reload runs: SIGHUP (after Reload has
// read the configuration again), `sockplay reload` (through the control
// socket) and `sockplay dev`.
//
// Applying changed options or addresses from a re-read configuration (which
// Reload reports as needing a restart) can use it too: a new process of the
// same binary, configured with the new options, is what supervisor.Replace
// swaps in without refusing a client.
type ReloadRequest struct {
	// Plugins names the plugins to reload. Each is replaced by a new process
	// of its binary as it is on disk now, changed or not: a graceful restart.
	// A named plugin that the host does not serve yet but finds in its plugin
	// directory (or $PATH) is started on its default address. Empty: every
	// served plugin whose binary's SHA-256 changed since its process started
	// is replaced, and the others are left alone (SIGHUP).
	Plugins []string `json:"plugins,omitempty"`
}

// ReloadResult is what a reload did to one plugin.
type ReloadResult struct {
	Plugin string `json:"plugin"`
	// Outcome is "replaced", "unchanged", "started" or "failed" (see Error).
	Outcome    string `json:"outcome"`
	OldPid     int    `json:"old_pid,omitempty"`
	NewPid     int    `json:"new_pid,omitempty"`
	OldVersion string `json:"old_version,omitempty"`
	NewVersion string `json:"new_version,omitempty"`
	OldSHA256  string `json:"old_sha256,omitempty"`
	NewSHA256  string `json:"new_sha256,omitempty"`
	// Addr is where a started plugin listens.
	Addr  string `json:"addr,omitempty"`
	Error string `json:"error,omitempty"`
}

// The outcomes of ReloadResult.
const (
	Replaced  = "replaced"
	Unchanged = "unchanged"
	Started   = "started"
	Failed    = "failed"
)

// UnknownPluginError is a reload that names a plugin the host neither serves
// nor finds.
type UnknownPluginError struct {
	Name   string
	Served []string
	Dir    string
}

func (e *UnknownPluginError) Error() string {
	served := strings.Join(e.Served, ", ")
	if served == "" {
		served = "none"
	}
	return fmt.Sprintf("no plugin %q: the host serves %s, and there is no %s%s in %s or $PATH", e.Name, served, catalog.Prefix, e.Name, e.Dir)
}

// errStopping refuses a replace once the host is stopping.
var errStopping = errors.New("the host is stopping")

// ReplacePlugins replaces plugins' processes by new ones of their binaries,
// with no client refused (supervisor.Replace), and starts named plugins it
// does not serve yet; see ReloadRequest. A name the host neither serves nor
// finds is an *UnknownPluginError, and then nothing is done. A plugin whose
// new binary fails keeps its old process serving; its result says why.
// Calls are serialized; the plugins of one call are replaced in parallel.
// Every outcome is logged.
func (h *Host) ReplacePlugins(ctx context.Context, req ReloadRequest) ([]ReloadResult, error) {
	h.replaceMu.Lock()
	defer h.replaceMu.Unlock()
	if h.isStopping() {
		return nil, errStopping
	}
	sups := h.supervisors()
	byName := map[string]*supervisor.Supervisor{}
	var served []string
	for _, s := range sups {
		byName[s.Status().Name] = s
		served = append(served, s.Status().Name)
	}

	type job struct {
		name  string
		sup   *supervisor.Supervisor // nil: start it
		entry catalog.Entry
		force bool
	}
	var jobs []job
	if len(req.Plugins) == 0 {
		for _, s := range sups {
			jobs = append(jobs, job{name: s.Status().Name, sup: s})
		}
	}
	for _, name := range req.Plugins {
		if slices.ContainsFunc(jobs, func(j job) bool { return j.name == name }) {
			continue
		}
		if s, ok := byName[name]; ok {
			jobs = append(jobs, job{name: name, sup: s, force: true})
			continue
		}
		e, err := catalog.Lookup(name, []string{h.cfg.PluginDir}, h.cfg.SearchPath)
		if err != nil {
			return nil, &UnknownPluginError{Name: name, Served: served, Dir: h.cfg.PluginDir}
		}
		jobs = append(jobs, job{name: name, entry: e})
	}

	results := make([]ReloadResult, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Go(func() {
			switch {
			case j.sup == nil:
				results[i] = h.startLate(ctx, j.entry, nil)
			case j.force && j.sup.Status().State == supervisor.Failed:
				results[i] = h.revive(ctx, j.sup)
			default:
				results[i] = h.replace(ctx, j.sup, j.force)
			}
		})
	}
	wg.Wait()
	return results, nil
}

// revive starts a plugin that the crash loop marked failed again, from its
// binary as it is now, on the address it had (its listener closed when it
// failed, so its clients were refused meanwhile). Only a reload that names
// the plugin does this (sockplay reload NAME), not SIGHUP nor a reload of
// every plugin: the operator says the plugin is fixed. A socket systemd
// passed closed with it, so such a plugin needs the host restarted.
func (h *Host) revive(ctx context.Context, s *supervisor.Supervisor) ReloadResult {
	st := s.Status()
	r := ReloadResult{Plugin: st.Name, OldVersion: st.Version, OldSHA256: s.Entry().Hex()}
	if h.cfg.Sockets[st.Name] != nil {
		r.Outcome, r.Error = Failed, "its socket came from systemd and closed when it failed: restart the service"
		return r
	}
	e, err := catalog.Reread(s.Entry())
	if err != nil {
		r.Outcome, r.Error = Failed, err.Error()
		return r
	}
	res := h.startLate(ctx, e, s)
	res.OldVersion, res.OldSHA256 = r.OldVersion, r.OldSHA256
	return res
}

// replace replaces one plugin's process by its binary as it is now, if it
// changed or force is set.
func (h *Host) replace(ctx context.Context, s *supervisor.Supervisor, force bool) ReloadResult {
	st := s.Status()
	cur := s.Entry()
	r := ReloadResult{Plugin: st.Name, OldPid: st.Pid, OldVersion: st.Version, OldSHA256: cur.Hex()}
	e, err := catalog.Reread(cur)
	if err != nil {
		h.log.Named(st.Name).Warn("reload: cannot read the binary; the old process serves on", "error", err)
		r.Outcome, r.Error = Failed, err.Error()
		return r
	}
	if !force && st.State != supervisor.Failed && bytes.Equal(e.SHA256, cur.SHA256) { // a failed one says why it stays failed
		r.Outcome = Unchanged
		return r
	}
	done, err := s.Replace(ctx, e)
	if err != nil {
		r.Outcome, r.Error, r.NewSHA256 = Failed, err.Error(), e.Hex()
		return r
	}
	r.Outcome, r.OldPid, r.NewPid = Replaced, done.OldPid, done.NewPid
	r.OldVersion, r.NewVersion, r.OldSHA256, r.NewSHA256 = done.OldVersion, done.NewVersion, done.OldSHA256, done.NewSHA256
	return r
}

// startLate starts a plugin the host did not serve, as Start does; or, with
// failed set, starts again the plugin whose supervisor that is, on the
// address it had, and puts the new supervisor in its place.
func (h *Host) startLate(ctx context.Context, e catalog.Entry, failed *supervisor.Supervisor) ReloadResult {
	r := ReloadResult{Plugin: e.Name, NewSHA256: e.Hex()}
	addr := ""
	if failed != nil {
		addr = failed.Status().Addr
	}
	sup, _, err := h.startPlugin(ctx, e, addr)
	if err != nil {
		h.log.Named(e.Name).Error("reload: plugin did not start", "error", err)
		h.unstarted.retried(e.Name, err)
		r.Outcome, r.Error = Failed, err.Error()
		return r
	}
	h.mu.Lock()
	if h.stopping {
		h.mu.Unlock()
		_ = sup.Close()
		r.Outcome, r.Error = Failed, errStopping.Error()
		return r
	}
	if i := slices.Index(h.sups, failed); failed != nil && i >= 0 {
		h.sups[i] = sup
	} else {
		h.sups = append(h.sups, sup)
	}
	h.mu.Unlock()
	h.unstarted.done(e.Name)
	go sup.Run(context.Background()) // its Shutdown or Close waits for it
	st := sup.Status()
	h.writeStatus(false)
	msg := "plugin started by a reload"
	if failed != nil {
		msg = "failed plugin started again by a reload"
	}
	h.log.Named(e.Name).Info(msg, "pid", st.Pid, "version", st.Version, "addr", st.Addr, "sha256", st.SHA256)
	r.Outcome, r.NewPid, r.NewVersion, r.Addr = Started, st.Pid, st.Version, st.Addr
	return r
}

// replaceChanged is SIGHUP's binary reload: every plugin whose binary
// changed is replaced.
func (h *Host) replaceChanged(ctx context.Context) {
	results, err := h.ReplacePlugins(ctx, ReloadRequest{})
	if err != nil {
		h.log.Warn("SIGHUP: binaries not checked", "error", err)
		return
	}
	counts := map[string]int{}
	for _, r := range results {
		counts[r.Outcome]++
	}
	h.log.Info("SIGHUP: binaries checked", Replaced, counts[Replaced], Unchanged, counts[Unchanged], Failed, counts[Failed])
}

func (h *Host) isStopping() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stopping
}
