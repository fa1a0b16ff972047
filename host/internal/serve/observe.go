package serve

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/sockplay/sockplay/host/internal/admin"
	"github.com/sockplay/sockplay/host/internal/catalog"
	"github.com/sockplay/sockplay/host/internal/config"
	"github.com/sockplay/sockplay/host/internal/observe"
	"github.com/sockplay/sockplay/host/internal/supervisor"
	"github.com/sockplay/sockplay/sdk/protocol"
)

// PluginStatus is one plugin in the status file, `sockplay status --json`
// and the admin endpoint's /api/status: the supervisor's view (name,
// version, transport, addr, state, pid, restarts, last_exit, error,
// standby_pid, started) and the observer's counters (events, trace,
// conns_active, conns_total, closed, bytes_in, bytes_out, refused, panics,
// datagrams_in, datagrams_out, events_dropped), in one flat object.
type PluginStatus struct {
	supervisor.Status
	observe.Stats
	// Refused counts refused clients by reason: those the host's listener
	// refused and those the plugin reported (the rules are enforced where
	// connections are accepted).
	Refused map[string]uint64 `json:"refused"`
}

// RefusedTotal is the sum of Refused.
func (p PluginStatus) RefusedTotal() uint64 {
	var n uint64
	for _, v := range p.Refused {
		n += v
	}
	return n
}

// mergeCounts adds maps of counts.
func mergeCounts(ms ...map[string]uint64) map[string]uint64 {
	out := map[string]uint64{}
	for _, m := range ms {
		for k, v := range m {
			out[k] += v
		}
	}
	return out
}

// AdminLine starts the line Start prints with the admin endpoint's URL.
const AdminLine = "sockplay: live page at "

// statusWriteInterval bounds how often counter changes rewrite the status
// file; a change of a plugin's state rewrites it at once.
const statusWriteInterval = time.Second

// observation is the host's observer, its admin endpoint and the goroutine
// that writes counter changes to the status file.
type observation struct {
	o     *observe.Observer
	admin *admin.Server
	stop  context.CancelFunc
	wg    sync.WaitGroup
	once  sync.Once

	mu   sync.Mutex
	last map[string]supervisor.Status // per plugin, for lifecycle events
}

// startObserving makes the observer, checks --trace against the enabled
// plugins and binds the admin endpoint (before any plugin starts, so that a
// bad --admin costs nothing).
func (h *Host) startObserving(enabled []catalog.Entry) error {
	for _, name := range h.cfg.Trace {
		if !slices.ContainsFunc(enabled, func(e catalog.Entry) bool { return e.Name == name }) {
			return fmt.Errorf("--trace %s: no plugin %q is enabled", name, name)
		}
	}
	h.obs.o = observe.New(observe.Config{Logger: h.log, LogConns: h.cfg.LogConns})
	h.obs.last = map[string]supervisor.Status{}
	for _, e := range enabled {
		h.obs.o.Add(e.Name, slices.Contains(h.cfg.Trace, e.Name))
	}
	if h.cfg.Admin == config.AdminOff || h.cfg.Admin == "" {
		return nil
	}
	a, err := admin.Listen(admin.Config{
		Addr: h.cfg.Admin, Token: h.cfg.AdminToken, Observer: h.obs.o, Logger: h.log.Named("admin"),
		Status: func() any { return h.report(false) },
		States: h.states,
	})
	if err != nil {
		return err
	}
	h.obs.admin = a
	return nil
}

// serveObserving starts the admin endpoint, says where it is, and starts
// writing counter changes to the status file.
func (h *Host) serveObserving(out io.Writer) {
	if h.obs.admin != nil {
		h.obs.admin.Serve()
		fmt.Fprintf(out, "%s%s (metrics at /metrics, JSON at /api/status)\n", AdminLine, h.obs.admin.URL())
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.obs.stop = cancel
	h.obs.wg.Go(func() { h.writeStatusOnChange(ctx) })
}

// stopObserving stops the admin endpoint and the status writer.
func (h *Host) stopObserving() {
	h.obs.once.Do(func() {
		if h.obs.stop != nil {
			h.obs.stop()
		}
		h.obs.wg.Wait()
		if h.obs.admin != nil {
			h.obs.admin.Close()
		}
	})
}

// writeStatusOnChange rewrites the status file when the counters change, at
// most once per statusWriteInterval.
func (h *Host) writeStatusOnChange(ctx context.Context) {
	_, seen := h.obs.o.Changed()
	for {
		changed, v := h.obs.o.Changed()
		if v != seen {
			h.writeStatus(false)
			seen = v
			select {
			case <-ctx.Done():
				return
			case <-time.After(statusWriteInterval):
			}
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}

// traceBytes is the trace budget of plugin name: 0 unless --trace names it.
func (h *Host) traceBytes(name string) uint32 {
	if slices.Contains(h.cfg.Trace, name) {
		return uint32(h.cfg.TraceBytes)
	}
	return 0
}

// checkTrace warns when a plugin in trace mode cannot trace.
func (h *Host) checkTrace(name string, d *protocol.Description) {
	if h.traceBytes(name) > 0 && !protocol.HasFeature(d, protocol.FeatureTrace) {
		h.log.Named(name).Warn("--trace: this plugin does not support trace mode (no \"trace\" feature); it is served without")
		h.obs.o.SetTrace(name, false)
	}
}

// watch is the supervisor's Watch hook: the observer reads each process's
// Events stream.
func (h *Host) watch(name string) func(context.Context, *supervisor.Process) {
	return func(ctx context.Context, p *supervisor.Process) {
		h.obs.o.Watch(ctx, name, p.Pid, p.Description, p.Control)
	}
}

// lifecycle turns a supervisor's change of state into the observer's
// exit, restart and failed events.
func (h *Host) lifecycle(st supervisor.Status) {
	if h.obs.o == nil {
		return
	}
	h.obs.mu.Lock()
	prev, known := h.obs.last[st.Name]
	h.obs.last[st.Name] = st
	h.obs.mu.Unlock()
	if !known {
		prev = st
		prev.LastExit = ""
	}
	if st.LastExit != "" && st.LastExit != prev.LastExit {
		h.obs.o.Lifecycle(st.Name, observe.KindExit, 0, st.LastExit)
	}
	if st.Restarts > prev.Restarts && st.Pid != 0 {
		h.obs.o.Lifecycle(st.Name, observe.KindRestart, st.Pid, fmt.Sprintf("restart %d", st.Restarts))
	}
	if st.State == supervisor.Failed && prev.State != supervisor.Failed {
		h.obs.o.Lifecycle(st.Name, observe.KindFailed, 0, st.Error)
	}
}

// states is the supervisor's side of the metrics.
func (h *Host) states() []observe.PluginState {
	sups := h.supervisors() // a reload may add a plugin meanwhile
	out := make([]observe.PluginState, 0, len(sups))
	for _, s := range sups {
		st := s.Status()
		out = append(out, observe.PluginState{Name: st.Name, Up: st.State == supervisor.Running && st.Pid > 0,
			Restarts: st.Restarts, Started: st.Started, Refused: st.Refused})
	}
	for _, st := range h.unstarted.statuses() {
		out = append(out, observe.PluginState{Name: st.Name})
	}
	return out
}
