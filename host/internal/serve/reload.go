package serve

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/sockplay/sockplay/host/internal/catalog"
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

// Reload reads the configuration again and applies what changed: rules at
// once (to the host's own listener when it enforces them, with SetRules when
// the plugin does), and new option values by replacing the plugin's process
// with one configured with them (supervisor.ReplaceOptions: no client is
// refused, open connections drain). A configuration that does not load,
// rules that cannot be enforced where the plugin's connections are accepted,
// or options a plugin does not declare, change nothing: the error says why,
// and the running setup is kept. A plugin that refuses its new option values
// keeps its process and its old values. Changes a reload does not apply
// (addresses, the plugins served, host settings) are reported in the error
// after the rest was applied; changed binaries are SIGHUP's next step
// (ReplacePlugins).
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
		r, err := rules.Compile(cfg.RulesFor(name, isUDP(p.desc)))
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
	var optionChanges []string
	for _, name := range names {
		if maps.Equal(h.cfg.Set[name], cfg.Set[name]) {
			continue
		}
		if err := checkOptions(cfg, name, h.reloads.plugins[name].desc, cfg.Set[name]); err != nil {
			return fmt.Errorf("keeping the running configuration: %w", err)
		}
		optionChanges = append(optionChanges, name)
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
	var failed []string
	for _, name := range optionChanges {
		sup := h.reloads.plugins[name].sup
		e, err := catalog.Reread(sup.Entry())
		if err == nil {
			_, err = sup.ReplaceOptions(ctx, e, maps.Clone(cfg.Set[name]))
		}
		if err != nil && ctx.Err() != nil {
			return fmt.Errorf("plugin %s: reload cut short: %w", name, context.Cause(ctx))
		}
		if err != nil {
			h.log.Named(name).Error("new options refused; the old process serves on with the old ones", "error", err)
			failed = append(failed, fmt.Sprintf("plugin %s: %v", name, err))
			continue
		}
		if h.cfg.Set == nil {
			h.cfg.Set = map[string]map[string]string{}
		}
		h.cfg.Set[name] = maps.Clone(cfg.Set[name])
		h.log.Named(name).Info("options changed; plugin replaced", "options", fmt.Sprint(cfg.Set[name]))
	}
	if len(failed) > 0 {
		return fmt.Errorf("new options not applied: %s", strings.Join(failed, "; "))
	}
	if rest := notReloaded(h.cfg, cfg, names); len(rest) > 0 {
		return fmt.Errorf("rules and options applied; these changes take a restart of sockplay: %s", strings.Join(rest, "; "))
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
