// Package serve is `sockplay serve` and `sockplay plugins`: it finds the
// plugins, starts the enabled ones under supervision on their listeners, and
// stops them all on a signal.
package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sockplay/sockplay/host/internal/catalog"
	"github.com/sockplay/sockplay/host/internal/config"
	"github.com/sockplay/sockplay/host/internal/listen"
	"github.com/sockplay/sockplay/host/internal/observe"
	"github.com/sockplay/sockplay/host/internal/supervisor"
	"github.com/sockplay/sockplay/sdk/protocol"
	"github.com/sockplay/sockplay/sdk/protocol/plog"
	"github.com/sockplay/sockplay/sdk/protocol/rules"
)

// ReadyLine starts the line Run prints once every plugin serves.
const ReadyLine = "sockplay: serving"

// Host is a running set of supervised plugins.
type Host struct {
	lock     *os.File // the status file's (lock.go); nil without one
	serving  bool     // under statusMu: Start succeeded
	cfg      config.Config
	log      hclog.Logger
	runDir   string
	statusMu sync.Mutex
	// Under statusMu: the last status-file write failed; its log limiter.
	statusFailing bool
	statusLim     plog.Limiter
	notify        func(state string) // systemd's sd_notify; nil: none
	obs           observation        // observe.go
	reloads       reloadState        // reload.go: the configuration read again

	mu       sync.Mutex // guards sups and stopping: ReplacePlugins may add a plugin
	sups     []*supervisor.Supervisor
	stopping bool

	// The lifecycle: closing is closed when Shutdown or Close begins;
	// reloadReq holds the one pending reload; work counts the reloads and
	// control requests in progress, which a stop waits for.
	closing   chan struct{}
	reloadReq chan struct{}
	work      sync.WaitGroup
	stopOnce  sync.Once
	drainOnce sync.Once
	draining  atomic.Bool   // Shutdown's drain started: drained will be closed
	drained   chan struct{} // closed when Shutdown's drain is done
	cleanOnce sync.Once

	unstarted unstarted      // plugins found that did not start (unstarted.go)
	replaceMu sync.Mutex     // one ReplacePlugins at a time (replace.go)
	control   *controlServer // `sockplay reload` talks to it (control.go)
}

// SetNotify sets the function told of the host's state changes in
// sd_notify(3)'s words: "RELOADING=1" and "READY=1" around a reload,
// "STOPPING=1" when a stop begins. Call it before Run.
func (h *Host) SetNotify(f func(state string)) { h.notify = f }

func (h *Host) tell(state string) {
	if h.notify != nil {
		h.notify(state)
	}
}

// StopGrace is how much longer than the drain timeout a stop may take: every
// call to a plugin during a stop has a deadline inside it (drain: drain
// timeout + 1 s, then a graceful stop of at most 3 s or a kill); Stop closes
// the host past it.
const StopGrace = 4 * time.Second

// ErrClosed is what Run returns once Shutdown or Close was called, as
// http.ErrServerClosed.
var ErrClosed = errors.New("serve: host closed")

// The host's lifecycle is net/http's Server's: Start (the listeners bound,
// the plugins started), Run (blocks, running the reloads asked for),
// Shutdown (drains), Close (stops at once). Signals are the command line's:
// it cancels Run's ctx on SIGINT or SIGTERM and calls RequestReload on SIGHUP.

// Run serves until ctx is done, or Shutdown or Close is called: it runs the
// reloads RequestReload asks for, one at a time, each on a goroutine of its
// own whose context ends with ctx and with the host's stop, so that a stop
// never waits for a reload and cuts short the one in progress. It returns
// nil when ctx is done (call Shutdown or Close then), ErrClosed once
// Shutdown or Close was called.
func (h *Host) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-h.closing:
			return ErrClosed
		case <-h.reloadReq:
		}
		rctx, cancel := h.bound(ctx)
		done := make(chan struct{})
		if !h.goWork(func() { defer close(done); h.reload(rctx) }) {
			cancel()
			return ErrClosed
		}
		select {
		case <-done:
			cancel()
		case <-ctx.Done():
			cancel() // the reload ends soon; Shutdown or Close waits for it
			return nil
		case <-h.closing:
			cancel()
			return ErrClosed
		}
	}
}

// RequestReload asks Run for a reload (SIGHUP): the configuration read
// again, then every changed binary replaced. It never blocks: requests that
// come while one waits collapse into it, so a burst of SIGHUPs during a
// reload makes one more reload, not one each.
func (h *Host) RequestReload() {
	select {
	case h.reloadReq <- struct{}{}:
	default:
	}
}

// bound returns ctx, cancelled too when the host begins to stop.
func (h *Host) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	stop := make(chan struct{})
	go func() {
		select {
		case <-h.closing:
			cancel(errStopping)
		case <-ctx.Done():
		case <-stop:
		}
	}()
	return ctx, func() { close(stop); cancel(context.Canceled) }
}

// goWork runs f on a goroutine that Shutdown and Close wait for, unless the
// host is stopping: then it reports false and runs nothing.
func (h *Host) goWork(f func()) bool {
	if !h.enterWork() {
		return false
	}
	go func() {
		defer h.work.Done()
		f()
	}()
	return true
}

// enterWork counts work that a stop waits for (call h.work.Done when it
// ends), unless the host is stopping: then it reports false.
func (h *Host) enterWork() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopping {
		return false
	}
	h.work.Add(1)
	return true
}

// reload is a reload Run runs: Reload (the configuration read again, with
// --config), then ReplacePlugins (every plugin whose binary changed on disk
// replaced by a new process of it), logged, with systemd told. ctx ends when
// the host stops: what is left of the reload is not done.
func (h *Host) reload(ctx context.Context) {
	h.tell("RELOADING=1")
	if h.reloads.load != nil {
		h.log.Info("reloading: reading the configuration again")
		if err := h.Reload(ctx); err != nil {
			h.log.Error("reload", "error", err)
		} else {
			h.log.Info("reloaded")
		}
	}
	if ctx.Err() == nil {
		h.replaceChanged(ctx)
	}
	if ctx.Err() != nil {
		h.log.Info("reload cut short: the host is stopping")
		return // no READY=1 after STOPPING=1
	}
	h.writeStatus(false)
	h.tell("READY=1")
}

// Start finds, launches, configures and supervises the enabled plugins. On
// any error it stops what it started and returns an error that names the
// plugin and the cause.
func Start(ctx context.Context, cfg config.Config, out io.Writer, log hclog.Logger) (_ *Host, err error) {
	defer func() { // the sockets not adopted
		for _, f := range cfg.Sockets {
			f.Close()
		}
	}()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var lock *os.File
	if cfg.StatusFile != "" {
		if lock, err = lockStatus(cfg.StatusFile); err != nil {
			return nil, err
		}
		defer func() {
			if err != nil && lock != nil {
				lock.Close()
			}
		}()
	}
	entries, skipped, err := catalog.Scan(cfg.PluginDir)
	if err != nil {
		return nil, err
	}
	for _, s := range skipped {
		log.Warn("skipping file", "path", s.Path, "reason", s.Reason)
	}
	enabled, err := selectPlugins(cfg, entries)
	if err != nil {
		return nil, err
	}
	runDir, fallback, err := supervisor.MakeRunDir(cfg.RunDir)
	if err != nil {
		return nil, err
	}
	if fallback != "" {
		log.Info(fallback)
	}
	h := &Host{cfg: cfg, log: log, runDir: runDir, lock: lock,
		closing: make(chan struct{}), reloadReq: make(chan struct{}, 1), drained: make(chan struct{})}
	defer func() {
		if err != nil {
			_ = h.Close()
			lock = nil // Close released it
		}
	}()
	if err := h.startObserving(enabled); err != nil {
		return nil, err
	}
	// Plugins start in parallel (a start is mostly waiting for a process and
	// a handshake); their lines are printed in name order.
	type started struct {
		sup  *supervisor.Supervisor
		line string
		err  error
	}
	results := make([]started, len(enabled))
	var wg sync.WaitGroup
	for i, e := range enabled {
		wg.Go(func() {
			sup, line, err := h.startPlugin(ctx, e, "")
			results[i] = started{sup, line, err}
		})
	}
	wg.Wait()
	// Serving every plugin found is best effort, as systemd starts the units
	// that can start when one fails, and xinetd logs a service it cannot
	// start and serves the rest: a plugin that does not start is logged,
	// shown as failed, and the others serve. A plugin the user named
	// (--enable, --listen, --set, a socket systemd passed) must start.
	var firstErr error
	var notStarted []error
	for i, r := range results {
		e := enabled[i]
		if r.err != nil {
			err := fmt.Errorf("plugin %s: %w", e.Name, r.err)
			var nr notRunnable
			if (cfg.Named(e.Name) || !errors.As(r.err, &nr)) && firstErr == nil {
				firstErr = err
			}
			notStarted = append(notStarted, err)
			results[i].line = fmt.Sprintf("%s\t-\tnot started\t(see the log; sockplay reload %s once fixed)", e.Name, e.Name)
			h.unstarted.add(e, r.err)
			continue
		}
		h.mu.Lock()
		h.sups = append(h.sups, r.sup)
		h.mu.Unlock()
		go r.sup.Run(context.Background()) // its Shutdown or Close waits for it
	}
	if firstErr == nil && len(notStarted) == len(results) {
		firstErr = notStartedError(notStarted)
	}
	if firstErr != nil {
		return nil, firstErr
	}
	for i, r := range results {
		if r.err != nil {
			h.log.Named(enabled[i].Name).Error("plugin not started; the others serve", "error", r.err.Error(),
				"then", "sockplay reload "+enabled[i].Name)
			h.obs.o.Lifecycle(enabled[i].Name, observe.KindFailed, 0, "not started: "+r.err.Error())
		}
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0) // names as long as pyfilexfer stay aligned
	for _, r := range results {
		fmt.Fprintln(tw, r.line)
	}
	if err := tw.Flush(); err != nil {
		return nil, err
	}
	h.statusMu.Lock()
	h.serving = true // from now on the status file is this host's to write
	h.statusMu.Unlock()
	h.serveObserving(out)
	n := len(h.supervisors())
	h.startControl()
	h.writeStatus(false)
	if names := h.unstarted.names(); len(names) > 0 {
		fmt.Fprintf(out, "%s %d %s (not started: %s); Ctrl-C stops\n", ReadyLine, n, plural(n, "plugin", "plugins"),
			strings.Join(names, ", "))
		return h, nil
	}
	fmt.Fprintf(out, "%s %d %s; Ctrl-C stops\n", ReadyLine, n, plural(n, "plugin", "plugins"))
	return h, nil
}

// notRunnable is a plugin that cannot run here: it does not start, answer
// its handshake or say what it is (a missing module, a bad binary), or its
// default address is taken. Serving every plugin found, the host logs it
// and serves the others; a configuration the user gave for it (options,
// rules, an address) that does not work fails the start.
type notRunnable struct{ err error }

func (e notRunnable) Error() string { return e.err.Error() }
func (e notRunnable) Unwrap() error { return e.err }

// notStartedError is the one line of a start in which no plugin started.
func notStartedError(errs []error) error {
	if len(errs) == 1 {
		return errs[0]
	}
	msgs := make([]string, len(errs))
	for i, err := range errs {
		msgs[i] = err.Error()
	}
	return fmt.Errorf("no plugin started: %s", strings.Join(msgs, "; "))
}

// Check is `sockplay serve --config FILE --check`: it checks cfg and that
// every plugin it names is there to serve, and compiles each plugin's rules,
// without starting anything. What only a running plugin can say (its
// options, its transport) is checked when it starts.
func Check(cfg config.Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	entries, _, err := catalog.Scan(cfg.PluginDir)
	if err != nil {
		return err
	}
	enabled, err := selectPlugins(cfg, entries)
	if err != nil {
		return err
	}
	runDir, err := os.MkdirTemp(cfg.RunDir, "sockplay-")
	if err != nil {
		return fmt.Errorf("run directory: %w", err)
	}
	defer os.RemoveAll(runDir)
	for _, e := range enabled {
		// Ask the plugin what it is, as `sockplay plugins` does, to check
		// its options and where its rules can be enforced.
		proc, desc, err := supervisor.Probe(context.Background(), supervisor.LaunchConfig{
			Entry: e, RunDir: runDir, LogLevel: hclog.Warn, Logger: hclog.NewNullLogger(), StartTimeout: cfg.StartTimeout,
		})
		if err != nil {
			return fmt.Errorf("plugin %s: %w", e.Name, err)
		}
		r, err := rules.Compile(cfg.RulesFor(e.Name, isUDP(desc)))
		if err != nil {
			proc.Stop()
			return fmt.Errorf("%s: %w", originOf(cfg, e.Name), err)
		}
		err = checkOptions(cfg, e.Name, desc, cfg.Set[e.Name])
		if err == nil {
			_, err = place(e.Name, desc, cfg.Handoff == config.HandoffListener, r)
		}
		proc.Stop()
		if err != nil {
			return fmt.Errorf("plugin %s: %w", e.Name, err)
		}
	}
	return nil
}

func selectPlugins(cfg config.Config, entries []catalog.Entry) ([]catalog.Entry, error) {
	var enabled []catalog.Entry
	if len(cfg.Enable) == 0 && len(cfg.Sockets) > 0 { // the socket unit says which
		for name := range cfg.Sockets {
			cfg.Enable = append(cfg.Enable, name)
		}
		slices.Sort(cfg.Enable)
	}
	for _, name := range cfg.Enable {
		e, err := catalog.Find(entries, name)
		if err != nil && cfg.SearchPath != "" {
			if pe, perr := catalog.Lookup(name, nil, cfg.SearchPath); perr == nil {
				e, err = pe, nil
			}
		}
		if _, passed := cfg.Sockets[name]; err != nil && passed {
			return nil, fmt.Errorf("systemd passed a socket named %q (FileDescriptorName=), but %w", name, err)
		}
		if err != nil {
			return nil, fmt.Errorf("--enable %s: %w", name, err)
		}
		if !slices.ContainsFunc(enabled, func(x catalog.Entry) bool { return x.Name == name }) {
			enabled = append(enabled, e)
		}
	}
	if len(cfg.Enable) == 0 {
		enabled = entries
	}
	if len(enabled) == 0 {
		return nil, fmt.Errorf("no plugins in %s (binaries named sockplay-NAME)", cfg.PluginDir)
	}
	isEnabled := func(name string) bool {
		return slices.ContainsFunc(enabled, func(e catalog.Entry) bool { return e.Name == name })
	}
	for name := range cfg.Listen {
		if !isEnabled(name) {
			return nil, fmt.Errorf("%s: no plugin %q is enabled", fileOrigin(cfg, name, "--listen "+name+"=..."), name)
		}
	}
	for name := range cfg.Set {
		if !isEnabled(name) {
			return nil, fmt.Errorf("%s: no plugin %q is enabled", fileOrigin(cfg, name, "--set "+name+"..."), name)
		}
	}
	if err := checkRuleNames(cfg, isEnabled); err != nil {
		return nil, err
	}
	for name := range cfg.Sockets {
		if !isEnabled(name) {
			return nil, fmt.Errorf("systemd passed a socket named %q (FileDescriptorName=), but no plugin %q is enabled", name, name)
		}
		if _, moved := cfg.Listen[name]; moved {
			return nil, fmt.Errorf("--listen %s=...: %s's socket comes from systemd (FileDescriptorName=%s)", name, name, name)
		}
	}
	return enabled, nil
}

// startPlugin starts plugin e, configured as the host's configuration says,
// on addr when it is not "" (a revived plugin's old address).
func (h *Host) startPlugin(ctx context.Context, e catalog.Entry, addrOverride string) (*supervisor.Supervisor, string, error) {
	plog := h.log.Named(e.Name)
	lc := supervisor.LaunchConfig{
		Entry: e, RunDir: h.runDir, LogLevel: h.log.GetLevel(), Logger: plog, StartTimeout: h.cfg.StartTimeout,
		TraceBytes: h.traceBytes(e.Name),
	}
	proc, desc, err := supervisor.Probe(ctx, lc)
	if err != nil {
		return nil, "", notRunnable{err}
	}
	ok := false
	defer func() {
		if !ok {
			proc.Kill()
		}
	}()
	options := h.cfg.Set[e.Name]
	if err := checkOptions(h.cfg, e.Name, desc, options); err != nil {
		return nil, "", err
	}
	h.checkTrace(e.Name, desc)
	addr := desc.GetDefaultAddr()
	if a, set := h.cfg.Listen[e.Name]; set {
		addr = a
	}
	if addrOverride != "" {
		addr = addrOverride
	}
	compiled, err := rules.Compile(h.cfg.RulesFor(e.Name, isUDP(desc)))
	if err != nil {
		return nil, "", fmt.Errorf("rules: %w", err)
	}
	where, err := place(e.Name, desc, h.cfg.Handoff == config.HandoffListener, compiled)
	if err != nil {
		return nil, "", err
	}
	if where.fellBack {
		plog.Info("the plugin lacks feature \"rules\": the host accepts its connections (conn handoff) to enforce them", "feature", protocol.FeatureRules)
	}
	ln, err := h.listener(desc, where, addr, h.cfg.Sockets[e.Name])
	if _, moved := h.cfg.Listen[e.Name]; err != nil && !moved && addrOverride == "" && h.cfg.Sockets[e.Name] == nil {
		return nil, "", notRunnable{err} // its default address is taken
	}
	if err != nil {
		return nil, "", err
	}
	tl, _ := ln.(*listen.TCP)
	if tl != nil {
		tl.SetLogger(plog)
		tl.SetRules(where.host)
	}
	if err := proc.Configure(ctx, options, ln.Addr().String(), where.plugin); err != nil {
		ln.Close()
		return nil, "", err
	}
	if !compiled.IsZero() {
		by := "host"
		if where.plugin != nil {
			by = "plugin"
		}
		plog.Info("rules", "rules", compiled.String(), "enforced_by", by)
	}
	// What a replacement binary must do too: take the shared listening
	// socket, enforce the rules.
	var needs []string
	if _, shared := ln.(*listen.Shared); shared && desc.GetTransport() == protocol.Transport_TRANSPORT_TCP {
		needs = append(needs, protocol.FeatureListener)
	}
	if where.plugin != nil {
		needs = append(needs, protocol.FeatureRules)
	}
	var sup *supervisor.Supervisor
	sup = supervisor.New(supervisor.Config{
		Launch: lc, Options: options, Listener: ln, Rules: where.plugin,
		BackoffInitial: h.cfg.BackoffInitial, BackoffMax: h.cfg.BackoffMax,
		CrashLimit: h.cfg.CrashLimit, CrashWindow: h.cfg.CrashWindow, Standby: h.cfg.Standby,
		HealthInterval: h.cfg.HealthInterval, HealthTimeout: h.cfg.HealthTimeout,
		OnChange:     func() { h.lifecycle(sup.Status()); h.writeStatus(false) },
		Watch:        h.watch(e.Name),
		DrainTimeout: h.cfg.DrainTimeout, Needs: needs,
	}, proc, desc)
	ok = true
	h.track(e.Name, &running{sup: sup, desc: desc, tcp: tl, listener: where.listener, rules: compiled, byPlugin: where.plugin != nil})
	line := fmt.Sprintf("%s\t%s\t%s %s\tpid %d", e.Name, desc.GetVersion(),
		supervisor.TransportName(desc.GetTransport()), ln.Addr(), proc.Pid)
	return sup, line, nil
}

// listener binds the plugin's listener on addr, or adopts socket, one that
// systemd passed (nil: none).
func (h *Host) listener(desc *protocol.Description, where placement, addr string, socket *os.File) (supervisor.Listener, error) {
	t := desc.GetTransport()
	if socket != nil {
		var ln supervisor.Listener
		var err error
		switch t {
		case protocol.Transport_TRANSPORT_TCP:
			if where.listener {
				ln, err = listen.FileTCPShared(socket)
			} else {
				ln, err = listen.FileTCP(socket)
			}
		case protocol.Transport_TRANSPORT_UDP:
			ln, err = listen.FileUDP(socket, h.cfg.UDPReadBuffer, h.cfg.UDPWriteBuffer)
		default:
			err = fmt.Errorf("unknown transport %v", t)
		}
		if err != nil {
			return nil, fmt.Errorf("the socket systemd passed (FileDescriptorName=%s) for this %s plugin: %w",
				desc.GetName(), supervisor.TransportName(t), err)
		}
		return ln, nil
	}
	switch {
	case t == protocol.Transport_TRANSPORT_TCP && where.listener:
		return listen.ListenTCPShared(addr, h.cfg.Backlog)
	case t == protocol.Transport_TRANSPORT_TCP:
		return listen.ListenTCP(addr, h.cfg.Backlog)
	case t == protocol.Transport_TRANSPORT_UDP:
		return listen.ListenUDP(addr, h.cfg.UDPReadBuffer, h.cfg.UDPWriteBuffer)
	}
	return nil, fmt.Errorf("unknown transport %v", t)
}

// checkOptions refuses a --set key (or a config file's set key) the plugin
// did not declare, naming the ones it did.
func checkOptions(cfg config.Config, name string, d *protocol.Description, options map[string]string) error {
	known := make([]string, 0, len(d.GetOptions()))
	for _, o := range d.GetOptions() {
		known = append(known, o.GetName())
	}
	keys := make([]string, 0, len(options))
	for k := range options {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !slices.Contains(known, k) {
			have := strings.Join(known, ", ")
			if have == "" {
				have = "none"
			}
			if o := fileOrigin(cfg, name+".set", ""); o != "" {
				return fmt.Errorf("%s: %s has no option %q (options: %s)", o, name, k, have)
			}
			return fmt.Errorf("--set %s.%s: %s has no option %q (options: %s)", name, k, name, k, have)
		}
	}
	return nil
}

// Status returns every plugin's status, with its counters.
func (h *Host) Status() []PluginStatus {
	sups := h.supervisors()
	out := make([]PluginStatus, len(sups))
	for i, s := range sups {
		st := s.Status()
		out[i] = PluginStatus{Status: st}
		if h.obs.o != nil {
			out[i].Stats = h.obs.o.Stats(st.Name)
		}
		out[i].Refused = mergeCounts(st.Refused, out[i].Stats.Refused)
	}
	for _, st := range h.unstarted.statuses() { // no process, no counters
		out = append(out, PluginStatus{Status: st, Refused: map[string]uint64{}})
	}
	slices.SortFunc(out, func(a, b PluginStatus) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (h *Host) supervisors() []*supervisor.Supervisor {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*supervisor.Supervisor(nil), h.sups...)
}

// Shutdown stops the host gracefully: reloads are refused and the one in
// progress cut short, the control socket closes, and every plugin drains
// (Config.DrainTimeout) and stops, all at once; then the run directory is
// removed, the status file says "stopped" and its lock is let go. It returns
// once that is done, or with ctx's error when ctx is done first: the stop
// goes on, and Close cuts it short.
func (h *Host) Shutdown(ctx context.Context) error {
	h.beginStop()
	h.drainOnce.Do(func() {
		h.draining.Store(true)
		go func() {
			defer close(h.drained)
			h.each(func(s *supervisor.Supervisor) { _ = s.Shutdown(context.Background()) })
			h.work.Wait()      // reloads and control requests, cut short
			h.replaceMu.Lock() // a replace still in flight has ended: its supervisors stopped
			h.replaceMu.Unlock()
			h.cleanup()
			h.log.Info("stopped")
		}()
	})
	select {
	case <-h.drained:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops the host at once: every plugin process is killed with its
// process group, a Shutdown in progress is cut short, and the host cleans up
// as Shutdown does. Its waits are bounded (supervisor.Close); the error says
// what did not stop in time.
func (h *Host) Close() error {
	h.beginStop()
	var mu sync.Mutex
	var errs []error
	h.each(func(s *supervisor.Supervisor) {
		if err := s.Close(); err != nil {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), closeWait)
	defer cancel()
	worked := make(chan struct{})
	go func() { h.work.Wait(); close(worked) }() // ends once the killed plugins let go
	select {
	case <-worked:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("a reload did not end within %s of the kill", closeWait))
	}
	if h.draining.Load() {
		select {
		case <-h.drained:
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("the drain did not end within %s of the kill", closeWait))
		}
	}
	h.cleanup()
	return errors.Join(errs...)
}

// closeWait bounds Close's waits after the kill.
const closeWait = 5 * time.Second

// Stop is how the command line stops the host on a signal: Shutdown, within
// the drain timeout plus StopGrace, cut short when now is done (a second
// signal); past either, Close. It returns nil for a clean stop, or an error
// that says which stop it was.
func (h *Host) Stop(now context.Context) error {
	limit := h.cfg.DrainTimeout + StopGrace
	ctx, cancel := context.WithTimeout(now, limit)
	defer cancel()
	err := h.Shutdown(ctx)
	select {
	case <-h.drained: // done as ctx ended: a clean stop all the same
		err = nil
	default:
	}
	switch {
	case err == nil:
		return nil
	case now.Err() != nil:
		if cerr := h.Close(); cerr != nil {
			h.log.Error("stop", "error", cerr)
		}
		return fmt.Errorf("stopped at once on %w", context.Cause(now))
	}
	h.log.Error("plugins did not stop in time; killing them", "waited", limit.String())
	if cerr := h.Close(); cerr != nil {
		h.log.Error("stop", "error", cerr)
	}
	return fmt.Errorf("stopped by force: the plugins did not stop within --drain-timeout %s + %s", h.cfg.DrainTimeout, StopGrace)
}

// beginStop refuses reloads from now on, cuts short the ones in progress,
// closes the control socket and tells systemd; once.
func (h *Host) beginStop() {
	h.stopOnce.Do(func() {
		h.mu.Lock()
		h.stopping = true
		h.mu.Unlock()
		close(h.closing)
		h.tell("STOPPING=1")
		h.stopControl()
	})
}

// cleanup removes the run directory and writes the last status; once.
func (h *Host) cleanup() {
	h.cleanOnce.Do(func() {
		h.waitControl()
		os.RemoveAll(h.runDir)
		h.stopObserving()
		h.writeStatus(true)
		h.unlock()
	})
}

// unlock lets another host have the status file, once this one has written
// its last status there.
func (h *Host) unlock() {
	h.statusMu.Lock()
	defer h.statusMu.Unlock()
	if h.lock != nil {
		h.lock.Close()
		h.lock = nil
	}
}

func (h *Host) each(f func(*supervisor.Supervisor)) {
	var wg sync.WaitGroup
	for _, s := range h.supervisors() {
		wg.Go(func() { f(s) })
	}
	wg.Wait()
}

// PluginInfo is one plugin as `sockplay plugins` shows it (the JSON of
// `sockplay plugins --json`).
type PluginInfo struct {
	Name        string   `json:"name"`
	Version     string   `json:"version"`
	Protocol    int      `json:"protocol"`
	Summary     string   `json:"summary"`
	Transport   string   `json:"transport"`
	DefaultAddr string   `json:"default_addr"`
	Features    []string `json:"features"`
	Path        string   `json:"path"`
	// Source says where it was found: "plugin-dir" or "PATH".
	Source string `json:"source"`
	SHA256 string `json:"sha256"`
}

// Discover is `sockplay plugins`: it finds the plugins in dir, then those in
// the directories of pathEnv not already found, starts each just long
// enough to ask what it is, and returns them with what it skipped and why.
func Discover(ctx context.Context, dir, pathEnv string, log hclog.Logger) ([]PluginInfo, []catalog.Skipped, error) {
	entries, skipped, err := catalog.Scan(dir)
	if err != nil {
		return nil, nil, err
	}
	inDir := len(entries)
	more, moreSkipped := catalog.ScanPath(pathEnv, entries)
	entries, skipped = append(entries, more...), append(skipped, moreSkipped...)
	runDir, _, err := supervisor.MakeRunDir("")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(runDir)

	var infos []PluginInfo
	for i, e := range entries {
		proc, d, err := supervisor.Probe(ctx, supervisor.LaunchConfig{
			Entry: e, RunDir: runDir, LogLevel: hclog.Warn, Logger: log.Named(e.Name), StartTimeout: 10 * time.Second,
		})
		if err != nil {
			skipped = append(skipped, catalog.Skipped{Path: e.Path, Reason: err.Error()})
			continue
		}
		source := "plugin-dir"
		if i >= inDir {
			source = "PATH"
		}
		infos = append(infos, PluginInfo{
			Name: d.GetName(), Version: d.GetVersion(), Protocol: proc.ProtocolVersion, Summary: d.GetSummary(),
			Transport: supervisor.TransportName(d.GetTransport()), DefaultAddr: d.GetDefaultAddr(),
			Features: append([]string{}, d.GetFeatures()...), Path: e.Path, Source: source, SHA256: e.Hex(),
		})
		proc.Stop()
	}
	if len(entries) == 0 && len(skipped) == 0 {
		return nil, nil, errors.New("no plugins in " + dir + " or $PATH (binaries named sockplay-NAME)")
	}
	return infos, skipped, nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
