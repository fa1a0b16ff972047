package serve

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/sockplay/sockplay/host/internal/config"
	"github.com/sockplay/sockplay/host/internal/listen"
	"github.com/sockplay/sockplay/host/internal/supervisor"
	"github.com/sockplay/sockplay/sdk/protocol"
	"github.com/sockplay/sockplay/sdk/protocol/rules"
)

// running is what a reload needs to know of one served plugin.
type running struct {
	sup      *supervisor.Supervisor
	desc     *protocol.Description
	tcp      *listen.TCP // the host's accepting listener; nil when the plugin accepts (or UDP)
	listener bool        // the plugin accepts on the shared listener
	rules    *rules.Rules
	byPlugin bool // the plugin enforces rules
}

// reloadState holds the running plugins by name, for Reload.
type reloadState struct {
	mu      sync.Mutex // one reload at a time; guards plugins and cfg
	plugins map[string]*running
	load    func() (config.Config, error)
}

func (h *Host) track(name string, r *running) {
	h.reloads.mu.Lock()
	defer h.reloads.mu.Unlock()
	if h.reloads.plugins == nil {
		h.reloads.plugins = map[string]*running{}
	}
	h.reloads.plugins[name] = r
}

// SetReloader sets how a reload (SIGHUP) reads the configuration again: the
// command line reads the --config file and lays the flags over it. Without
// one, SIGHUP is logged and ignored.
func (h *Host) SetReloader(load func() (config.Config, error)) { h.reloads.load = load }

// Reload reads the configuration again and applies the rules that changed,
// at once: to the host's own listener when it enforces them, with SetRules
// when the plugin does. Connections already open stay open. A configuration
// that does not load, or rules that cannot be enforced where the plugin's
// connections are accepted, change nothing: the error says why, and the
// running setup is kept. Changes a reload does not apply (options,
// addresses, the plugins served, binaries) are reported in the error after
// the rules were applied.
func (h *Host) Reload(ctx context.Context) error {
	if h.reloads.load == nil {
		return errors.New("no configuration to reload (sockplay serve was not given --config)")
	}
	cfg, err := h.reloads.load()
	if err != nil {
		return fmt.Errorf("keeping the running configuration: %w", err)
	}
	h.reloads.mu.Lock()
	defer h.reloads.mu.Unlock()

	// First decide everything, so that a plugin whose rules cannot be
	// applied leaves every plugin as it was.
	type change struct {
		name  string
		p     *running
		rules *rules.Rules
		where placement
	}
	var changes []change
	names := slices.Sorted(maps.Keys(h.reloads.plugins))
	for _, name := range names {
		p := h.reloads.plugins[name]
		r, err := rules.Compile(cfg.RulesFor(name))
		if err != nil {
			return fmt.Errorf("keeping the running configuration: %s: %w", originOf(cfg, name), err)
		}
		if r.String() == p.rules.String() {
			continue
		}
		where, err := place(name, p.desc, p.listener, r)
		switch {
		case err != nil:
			return fmt.Errorf("keeping the running configuration: %w", err)
		case where.listener != p.listener || where.fellBack:
			return fmt.Errorf("keeping the running configuration: plugin %s: its new rules need the host to accept its connections, and it accepts them itself: restart sockplay to apply them", name)
		}
		changes = append(changes, change{name, p, r, where})
	}
	for _, c := range changes {
		if c.p.tcp != nil {
			c.p.tcp.SetRules(c.where.host)
		}
		if c.where.plugin != nil || c.p.byPlugin { // new rules, or none where there were some
			if err := c.p.sup.SetRules(ctx, c.where.plugin); err != nil {
				return fmt.Errorf("plugin %s: set rules: %w", c.name, err)
			}
		}
		c.p.byPlugin = c.where.plugin != nil
		by := "host"
		if c.where.plugin != nil {
			by = "plugin"
		}
		h.log.Named(c.name).Info("rules changed", "rules", c.rules.String(), "enforced_by", by)
		c.p.rules = c.rules
	}
	if rest := notReloaded(h.cfg, cfg, names); len(rest) > 0 {
		return fmt.Errorf("rules applied; these changes take a restart of sockplay, since reload does not replace plugins yet: %s", strings.Join(rest, "; "))
	}
	return nil
}

// notReloaded lists what differs between the running configuration and the
// new one beyond the rules.
func notReloaded(old, new config.Config, running []string) []string {
	var out []string
	for _, name := range running {
		if old.Listen[name] != new.Listen[name] {
			out = append(out, fmt.Sprintf("plugin %s listen %q", name, new.Listen[name]))
		}
		if !maps.Equal(old.Set[name], new.Set[name]) {
			out = append(out, fmt.Sprintf("plugin %s options", name))
		}
	}
	if !slices.Equal(old.Enable, new.Enable) {
		out = append(out, "enable")
	}
	if old.DrainTimeout != new.DrainTimeout || old.Handoff != new.Handoff || old.Backlog != new.Backlog ||
		old.Standby != new.Standby || old.CrashLimit != new.CrashLimit || old.Admin != new.Admin {
		out = append(out, "host settings")
	}
	return out
}
