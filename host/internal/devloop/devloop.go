// Package devloop is `sockplay dev`, the plugin author's edit-build-serve
// loop in one command. It watches a plugin's source files (fsnotify, with a
// debounce, since editors write a file in several steps), rebuilds the
// plugin into the host's plugin directory on every change, and has the host
// replace the running process by the new build (serve.Host.Reload, which
// refuses no client and lets open connections finish on the old version). A
// build that fails prints the compiler's messages and the old version serves
// on.
//
// It uses the host that runs for the status file if there is one, through
// its control socket, building into that host's plugin directory; otherwise
// it runs a host itself, serving just the plugin, and stops it on SIGINT or
// SIGTERM.
package devloop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/hashicorp/go-hclog"

	"github.com/sockplay/sockplay/host/internal/config"
	"github.com/sockplay/sockplay/host/internal/serve"
)

// Config is what `sockplay dev` runs with.
type Config struct {
	Source Source
	// Serve configures the host dev runs when none is running; its
	// PluginDir is where builds go then, and its StatusFile is where a
	// running host is looked for.
	Serve config.Config
	// Listen is the plugin's address on a host dev runs ("": its default).
	Listen string
	// PythonSDK is sdk/python of a checkout (Python plugins only).
	PythonSDK string
	// Debounce is the quiet time after a change before a build.
	Debounce time.Duration
	// Out gets dev's lines and the compiler's messages; Log is the log of
	// the host dev runs.
	Out io.Writer
	Log hclog.Logger
}

// DefaultDebounce waits out an editor's save (write, rename, chmod).
const DefaultDebounce = 150 * time.Millisecond

// Run runs the loop until ctx is done (the first SIGINT or SIGTERM), then
// stops what it started: its host drains, as `sockplay serve`'s does, and
// stops at once when now is done (a second signal).
func Run(ctx context.Context, cfg Config, now context.Context) error {
	if cfg.Debounce <= 0 {
		cfg.Debounce = DefaultDebounce
	}
	l := &loop{cfg: cfg, out: cfg.Out}
	if st, err := serve.ReadStatus(cfg.Serve.StatusFile); err == nil && st.HostState == "running" {
		l.remote = true
		l.cfg.Serve.PluginDir = st.PluginDir
		l.printf("using the host (pid %d) that runs for %s; building into %s", st.HostPid, cfg.Serve.StatusFile, st.PluginDir)
	} else {
		l.printf("no host runs for %s: this command runs one; building into %s", cfg.Serve.StatusFile, cfg.Serve.PluginDir)
	}
	if l.cfg.Serve.PluginDir == "" {
		return errors.New("no plugin directory")
	}
	l.builder = Builder{Src: cfg.Source, PluginDir: l.cfg.Serve.PluginDir, PythonSDK: cfg.PythonSDK}

	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", cfg.Source.Dir, err)
	}
	defer w.Close()
	if err := addTree(w, cfg.Source.Dir); err != nil {
		return fmt.Errorf("watch %s: %w", cfg.Source.Dir, err)
	}
	l.printf("watching %s (%s); Ctrl-C stops", cfg.Source.Dir, langName(cfg.Source.Lang))

	loopCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- l.watch(loopCtx, w) }()
	select {
	case <-ctx.Done():
	case err := <-done:
		l.stopHost(now)
		return err
	}
	cancel()
	<-done
	l.printf("%v: stopping", context.Cause(ctx))
	return l.stopHost(now)
}

// loop is one `sockplay dev`.
type loop struct {
	cfg     Config
	out     io.Writer
	builder Builder
	remote  bool        // a host was running: talk to it
	host    *serve.Host // the host this command runs, once started
	name    string      // the plugin's name, once built
}

func (l *loop) printf(format string, args ...any) {
	fmt.Fprintf(l.out, "sockplay dev: "+format+"\n", args...)
}

// watch builds at once, then after every burst of relevant changes.
func (l *loop) watch(ctx context.Context, w *fsnotify.Watcher) error {
	l.rebuild(ctx, nil)
	var timer <-chan time.Time
	var changed []string
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("the file watcher stopped")
			}
			if ev.Has(fsnotify.Create) {
				if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() && !skipDir(ev.Name) {
					_ = addTree(w, ev.Name)
				}
			}
			if !l.cfg.Source.relevant(ev.Name) || ev.Op == fsnotify.Chmod {
				continue
			}
			rel, err := filepath.Rel(l.cfg.Source.Dir, ev.Name)
			if err != nil {
				rel = ev.Name
			}
			if !slices.Contains(changed, rel) {
				changed = append(changed, rel)
			}
			timer = time.After(l.cfg.Debounce)
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("the file watcher stopped")
			}
			l.printf("watching: %v", err)
		case <-timer:
			timer = nil
			l.rebuild(ctx, changed)
			changed = nil
		}
	}
}

// rebuild builds and, if the build works, serves it.
func (l *loop) rebuild(ctx context.Context, changed []string) {
	if len(changed) > 0 {
		l.printf("%s changed: building", strings.Join(changed, ", "))
	} else {
		l.printf("building")
	}
	b, err := l.builder.Build(ctx)
	if ctx.Err() != nil {
		return
	}
	var be *BuildError
	switch {
	case errors.As(err, &be):
		if be.Output != "" {
			fmt.Fprintln(l.out, be.Output)
		}
		if l.name != "" {
			l.printf("build failed (%v); the old version serves on", be.Err)
		} else {
			l.printf("build failed (%v); fix it and save", be.Err)
		}
		return
	case err != nil:
		l.printf("build failed: %v", err)
		return
	}
	if b.Unchanged && l.name == b.Name && (l.remote || l.host != nil) {
		l.printf("built sockplay-%s %s: the binary did not change; nothing to reload", b.Name, b.Version)
		return
	}
	l.printf("built %s %s (sha256 %s) in %s", b.Path, b.Version, b.SHA256[:12], b.Took.Round(time.Millisecond))
	l.serve(ctx, b)
}

// serve has the host serve build b: the running host reloads it, or this
// command starts its own host.
func (l *loop) serve(ctx context.Context, b Built) {
	first := l.name == ""
	l.name = b.Name
	req := serve.ReloadRequest{Plugins: []string{b.Name}}
	switch {
	case l.remote:
		reply, err := serve.RequestReload(ctx, l.cfg.Serve.StatusFile, req)
		l.report(reply.Results, err)
	case l.host == nil:
		l.startHost(ctx)
	default:
		results, err := l.host.ReplacePlugins(ctx, req)
		l.report(results, err)
		if len(results) == 1 && results[0].Outcome == serve.Failed && strings.Contains(results[0].Error, "is failed") {
			// It crash-looped: serve the new build on a new host.
			l.printf("restarting the host this command runs")
			if err := l.host.Stop(ctx); err != nil {
				l.printf("%v", err)
			}
			l.host = nil
			l.startHost(ctx)
		}
	}
	if first && (l.remote || l.host != nil) {
		l.printf("edit and save: each build replaces the running %s, refusing no client", b.Name)
	}
}

func (l *loop) report(results []serve.ReloadResult, err error) {
	if err != nil {
		l.printf("reload %s: %v", l.name, err)
		return
	}
	for _, r := range results {
		switch r.Outcome {
		case serve.Replaced:
			l.printf("%s: replaced: pid %d -> %d, version %s -> %s", r.Plugin, r.OldPid, r.NewPid, r.OldVersion, r.NewVersion)
		case serve.Started:
			l.printf("%s: started: pid %d, version %s, on %s", r.Plugin, r.NewPid, r.NewVersion, r.Addr)
		default:
			l.printf("%s: %s: %s; the old version serves on", r.Plugin, r.Outcome, r.Error)
		}
	}
}

// startHost starts a host that serves the plugin, as `sockplay serve
// --enable NAME` would.
func (l *loop) startHost(ctx context.Context) {
	cfg := l.cfg.Serve
	cfg.Enable = []string{l.name}
	cfg.Listen = map[string]string{}
	if l.cfg.Listen != "" {
		cfg.Listen[l.name] = l.cfg.Listen
	}
	cfg.Set = map[string]map[string]string{}
	h, err := serve.Start(ctx, cfg, l.out, l.cfg.Log)
	if err != nil {
		l.printf("the host did not start: %v; fix it and save", err)
		return
	}
	l.host = h
}

// stopHost stops the host this command runs, if any: it drains, and stops
// at once when now is done.
func (l *loop) stopHost(now context.Context) error {
	if l.host == nil {
		return nil
	}
	if err := l.host.Stop(now); err != nil {
		return err
	}
	l.printf("stopped")
	return nil
}

// addTree watches dir and the directories under it, but hidden ones,
// testdata and vendor.
func addTree(w *fsnotify.Watcher, dir string) error {
	return filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if path != dir && skipDir(path) {
			return filepath.SkipDir
		}
		return w.Add(path)
	})
}

func skipDir(path string) bool {
	base := filepath.Base(path)
	return strings.HasPrefix(base, ".") || base == "testdata" || base == "vendor" || base == "__pycache__"
}

func langName(lang string) string {
	if lang == Python {
		return "Python"
	}
	return "Go"
}
