package serve

import (
	"slices"
	"sync"

	"github.com/sockplay/sockplay/host/internal/catalog"
	"github.com/sockplay/sockplay/host/internal/supervisor"
)

// unstarted holds the plugins found that did not start when the host served
// every plugin it found (best effort): each shows as failed, with its error,
// in the status, the page and /metrics, until `sockplay reload NAME` starts
// it.
type unstarted struct {
	mu      sync.Mutex
	plugins map[string]unstartedPlugin
}

type unstartedPlugin struct {
	entry catalog.Entry
	err   string
}

func (u *unstarted) add(e catalog.Entry, err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.plugins == nil {
		u.plugins = map[string]unstartedPlugin{}
	}
	u.plugins[e.Name] = unstartedPlugin{entry: e, err: err.Error()}
}

// done forgets plugin name, which has started now.
func (u *unstarted) done(name string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.plugins, name)
}

// retried records why plugin name, if it had not started, still did not.
func (u *unstarted) retried(name string, err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if p, ok := u.plugins[name]; ok {
		p.err = err.Error()
		u.plugins[name] = p
	}
}

func (u *unstarted) names() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []string
	for name := range u.plugins {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// statuses are the plugins that did not start, as failed supervisors' are.
func (u *unstarted) statuses() []supervisor.Status {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make([]supervisor.Status, 0, len(u.plugins))
	for name, p := range u.plugins {
		out = append(out, supervisor.Status{Name: name, State: supervisor.Failed, Error: "not started: " + p.err,
			SHA256: p.entry.Hex()})
	}
	return out
}
