// Package supervisor runs plugin processes: it launches each with go-plugin
// (the only importer of go-plugin's client), configures it, feeds it the
// connections its listener accepts, restarts it with capped, jittered
// exponential backoff when it dies, marks it failed when it crash-loops, and
// drains and stops it on shutdown.
//
// Lifecycle of one plugin, as net/http's Server: Probe launches the first
// process and asks it what it is; the caller binds the listener and calls
// Configure; New and Run(ctx) take it from there. Run blocks until Shutdown
// (drains, then stops), Close (stops at once) or ctx's end, or until the
// plugin is marked failed. Replace swaps the serving process for a new
// binary's without refusing a client (replace.go). Every start, restarts
// included, hashes the binary afresh: a binary rebuilt in place is adopted,
// never taken for a crash.
//
// A plugin's State, as Status reports it, moves as http.ConnState does, along
// these edges and no others:
//
//	from        to          when
//	(New)       Running     the first process, configured, is handed to New
//	Running     Running     a standby process took over from a dead one, or a
//	                        Replace swapped in a new process
//	Running     Restarting  the serving process died (crash, exit, killed as
//	                        frozen by the health check, a failed handoff) and
//	                        no standby was ready
//	Restarting  Running     a new process started and was configured after
//	                        the backoff, or a Replace handed one over
//	Restarting  Failed      Config.CrashLimit crashes (failed starts count)
//	                        fell within Config.CrashWindow: the listener is
//	                        closed, so that clients are refused; Run returns
//	                        an error wrapping ErrFailed
//	Running     Stopped     Shutdown (after the drain) or Close, or Run's ctx
//	Restarting  Stopped     ended
//	Failed      Stopped     Close (Shutdown leaves a failed plugin Failed)
//
// Stopped is final: a stopped supervisor does not run again (a failed plugin
// is started again by a new supervisor: serve's revive).
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/status"

	"github.com/sockplay/sockplay/host/internal/catalog"
	"github.com/sockplay/sockplay/host/internal/listen"
	"github.com/sockplay/sockplay/sdk/protocol"
	"github.com/sockplay/sockplay/sdk/protocol/plog"
)

// Listener is what a supervisor feeds its process from: a listen.TCP or
// listen.UDP.
type Listener interface {
	Serve(ctx context.Context, sink listen.Sink) error
	Addr() net.Addr
	Close() error
}

// Probe launches a plugin process and asks it what it is. It checks that the
// plugin's name is the one its binary is named after.
func Probe(ctx context.Context, lc LaunchConfig) (*Process, *protocol.Description, error) {
	p, err := Launch(ctx, lc)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, lc.StartTimeout)
	defer cancel()
	d, err := p.Control.Describe(ctx, &protocol.DescribeRequest{})
	if err != nil {
		p.Kill()
		return nil, nil, fmt.Errorf("describe: %s", rpcMessage(err))
	}
	if d.GetName() != lc.Entry.Name {
		p.Kill()
		return nil, nil, fmt.Errorf("binary sockplay-%s says its name is %q", lc.Entry.Name, d.GetName())
	}
	p.hand.answers.Store(protocol.HasFeature(d, protocol.FeatureHandoffAck))
	p.Description = d
	return p, d, nil
}

// Configure passes the plugin its options, the address the host bound for
// it, and the rules it is to enforce itself (nil: none; sent only to a
// plugin with feature "rules"). The plugin's refusal comes back as its own
// one-line message.
func (p *Process) Configure(ctx context.Context, options map[string]string, addr string, rules *protocol.Rules) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req := &protocol.ConfigureRequest{Options: options, ListenAddr: addr, Rules: rules}
	if protocol.HasFeature(p.Description, protocol.FeatureTrace) {
		req.TraceBytes = p.traceBytes
	}
	if _, err := p.Control.Configure(ctx, req); err != nil {
		return errors.New(rpcMessage(err))
	}
	return nil
}

// SetRules replaces the rules the plugin enforces itself.
func (p *Process) SetRules(ctx context.Context, rules *protocol.Rules) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := p.Control.SetRules(ctx, &protocol.SetRulesRequest{Rules: rules}); err != nil {
		return errors.New(rpcMessage(err))
	}
	return nil
}

// State is where a supervised plugin is in its life.
type State string

// The states.
const (
	Running    State = "running"
	Restarting State = "restarting"
	Failed     State = "failed"
	Stopped    State = "stopped"
)

// Config is a supervisor's configuration.
type Config struct {
	Launch   LaunchConfig
	Options  map[string]string
	Listener Listener
	// Rules are what the plugin enforces itself (where it accepts, reads
	// PROXY headers or receives datagrams); nil: none. SetRules changes them.
	Rules *protocol.Rules

	BackoffInitial time.Duration
	BackoffMax     time.Duration
	CrashLimit     int
	CrashWindow    time.Duration
	// Standby keeps a second process started and configured, but handed
	// nothing, so that when the serving one dies the spare takes over at once
	// instead of after a restart's backoff and start.
	Standby bool
	// OnChange, if set, is called after every change of state.
	OnChange func()
	// HealthInterval is how often the serving process is asked for its
	// Health (0: never); HealthTimeout is each call's deadline. A process
	// that misses healthFailures in a row is taken for frozen, killed and
	// restarted (a crash).
	HealthInterval time.Duration
	HealthTimeout  time.Duration
	// Watch, if set, is called on its own goroutine for every process that
	// starts serving (the first, each restart, a standby that takes over, a
	// replacement), with a context that ends when that process exits or the
	// supervisor is killed. Shutdown and Close wait for it to return. The
	// observer opens the process's Events stream here.
	Watch func(ctx context.Context, p *Process)
	// DrainTimeout bounds how long a replaced process's open connections
	// get to finish.
	DrainTimeout time.Duration
	// Needs lists the features (protocol.Feature...) every binary of the
	// plugin must declare: a replacement that lacks one is refused.
	Needs []string
}

// Status is a snapshot of a supervised plugin.
type Status struct {
	Name      string `json:"name"`
	Version   string `json:"version"`
	Transport string `json:"transport"`
	Addr      string `json:"addr"`
	State     State  `json:"state"`
	Pid       int    `json:"pid,omitempty"`
	Restarts  int    `json:"restarts"`
	LastExit  string `json:"last_exit,omitempty"`
	Error     string `json:"error,omitempty"`
	// StandbyPid is the spare process's, with Config.Standby.
	StandbyPid int `json:"standby_pid,omitempty"`
	// Refused counts the connections the host's listener refused, by reason
	// (the rules the plugin enforces itself it reports in its events).
	Refused map[string]uint64 `json:"refused,omitempty"`
	// Started is when the serving process started serving (RFC 3339).
	Started time.Time `json:"started,omitzero"`
	// SHA256 is the hexadecimal SHA-256 of the binary that serves.
	SHA256 string `json:"sha256,omitempty"`
	// Replaced counts the replaces (reload, SIGHUP, sockplay dev).
	Replaced int `json:"replaced,omitempty"`
}

// Supervisor keeps one plugin served.
type Supervisor struct {
	cfg  Config
	log  hclog.Logger
	desc *protocol.Description

	ctx    context.Context // cancelled by Shutdown and Close, and when Run's ctx is done
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returns

	mu        sync.Mutex
	proc      *Process
	startedAt time.Time     // of proc
	backoff   time.Duration // next restart's, before jitter
	state     State
	restarts  int
	lastExit  string
	err       string
	crashes   []time.Time
	spare     *Process      // configured, handed nothing (Config.Standby)
	taken     chan struct{} // keepSpare learns that its spare was promoted
	reaping   sync.WaitGroup
	watching  sync.WaitGroup // Config.Watch calls
	killed    chan struct{}  // closed by Close: ends the Watch contexts
	killOnce  sync.Once

	ran       atomic.Bool   // Run was called: done will be closed
	stopAsked atomic.Bool   // Shutdown or Close was called
	shutOnce  sync.Once     // starts Shutdown's work
	shutting  atomic.Bool   // Shutdown's work started: shutDone will be closed
	shutDone  chan struct{} // closed when Shutdown's work is done

	entry     catalog.Entry     // the binary of the serving process, as last read
	replaced  int               // replaces done
	handovers chan *handover    // Replace to Run
	replaceMu sync.Mutex        // one Replace at a time
	retired   map[*Process]bool // replaced, draining
	retiring  sync.WaitGroup    // their drains
}

// New returns a supervisor for a process that Probe launched and that was
// configured.
func New(cfg Config, proc *Process, desc *protocol.Description) *Supervisor {
	ctx, cancel := context.WithCancel(context.Background())
	return &Supervisor{
		cfg: cfg, log: cfg.Launch.Logger, desc: desc,
		ctx: ctx, cancel: cancel, done: make(chan struct{}),
		proc: proc, startedAt: time.Now(), backoff: cfg.BackoffInitial, state: Running,
		taken: make(chan struct{}, 1), killed: make(chan struct{}), shutDone: make(chan struct{}),
		entry: proc.Entry, handovers: make(chan *handover), retired: map[*Process]bool{},
	}
}

// Status returns a snapshot.
func (s *Supervisor) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{
		Name: s.desc.GetName(), Version: s.desc.GetVersion(), Transport: TransportName(s.desc.GetTransport()),
		Addr: s.cfg.Listener.Addr().String(), State: s.state, Restarts: s.restarts, LastExit: s.lastExit, Error: s.err,
		SHA256: s.entry.Hex(), Replaced: s.replaced,
	}
	if s.proc != nil && s.state == Running {
		st.Pid = s.proc.Pid
		st.Started = s.startedAt.UTC()
	}
	if s.spare != nil {
		st.StandbyPid = s.spare.Pid
	}
	if r, ok := s.cfg.Listener.(interface{ Refused() map[string]uint64 }); ok {
		if m := r.Refused(); len(m) > 0 {
			st.Refused = m
		}
	}
	return st
}

// SetRules replaces the rules the plugin enforces itself: the serving
// process and the spare get them at once, and every process started later
// with its configuration.
func (s *Supervisor) SetRules(ctx context.Context, rules *protocol.Rules) error {
	s.mu.Lock()
	s.cfg.Rules = rules
	procs := []*Process{s.proc, s.spare}
	s.mu.Unlock()
	var errs []error
	for _, p := range procs {
		if p != nil {
			if err := p.SetRules(ctx, rules); err != nil {
				errs = append(errs, fmt.Errorf("pid %d: %w", p.Pid, err))
			}
		}
	}
	return errors.Join(errs...)
}

func (s *Supervisor) set(f func()) {
	s.mu.Lock()
	f()
	s.mu.Unlock()
	if s.cfg.OnChange != nil {
		s.cfg.OnChange()
	}
}

// Run feeds the listener's connections to the process, and restarts the
// process when it dies, until Shutdown or Close is called, ctx is done, or
// the plugin is marked failed. It returns ErrStopped after Shutdown or
// Close; an error that wraps ErrFailed when the plugin is marked failed (its
// listener is closed then); ctx's error when ctx is done, after stopping the
// plugin at once, as Close does. Run must be called once.
func (s *Supervisor) Run(ctx context.Context) error {
	defer close(s.done)
	defer s.reaping.Wait()
	s.ran.Store(true)
	stopOnCtx := context.AfterFunc(ctx, s.cancel)
	defer stopOnCtx()
	if s.cfg.Standby {
		ctx, stop := context.WithCancel(s.ctx)
		var wg sync.WaitGroup
		wg.Go(func() { s.keepSpare(ctx) })
		defer wg.Wait()
		defer stop()
	}
	proc := s.current()
	for proc != nil {
		next := s.serve(proc)
		if s.ctx.Err() != nil {
			if next != nil {
				next.refuse(errStopped)
			}
			break
		}
		if next != nil {
			s.promoted(next, proc)
			proc = next.proc
			continue
		}
		proc = s.restart(proc)
	}
	switch {
	case s.stopAsked.Load():
		return ErrStopped
	case ctx.Err() != nil:
		s.kill()
		s.killProcesses()
		s.retiring.Wait()
		s.watching.Wait()
		s.set(func() { s.state = Stopped })
		return ctx.Err()
	}
	return fmt.Errorf("%w: %s", ErrFailed, s.Status().Error)
}

// ErrStopped is what Run returns after Shutdown or Close, as
// http.ErrServerClosed.
var ErrStopped = errors.New("supervisor: stopped")

// ErrFailed is what Run's error wraps when the plugin is marked failed.
var ErrFailed = errors.New("supervisor: plugin marked failed")

func (s *Supervisor) current() *Process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc
}

// watch calls Config.Watch for proc on a goroutine of its own.
func (s *Supervisor) watch(proc *Process) {
	if s.cfg.Watch == nil {
		return
	}
	s.watching.Go(func() {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			defer cancel()
			select {
			case <-proc.Exited():
			case <-s.killed:
			case <-stop:
			}
		}()
		s.cfg.Watch(ctx, proc)
	})
}

// serve hands connections to proc until it dies, the supervisor stops, or
// Replace hands over a new process, which it returns; it checks meanwhile
// that proc answers.
func (s *Supervisor) serve(proc *Process) *handover {
	s.watch(proc)
	ctx, cancel := context.WithCancel(s.ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	proc.hand.setRequeue(s.requeue)
	wg.Go(func() { s.checkHealth(ctx, proc) })
	served := make(chan error, 1)
	go func() { served <- s.cfg.Listener.Serve(ctx, proc) }()
	select {
	case <-proc.Exited():
		cancel()
		<-served
	case <-s.ctx.Done():
		proc.interruptSend() // a plugin that does not read must not hold up a stop
		<-served
	case h := <-s.handovers:
		// The listener stops feeding proc; what it accepted and did not hand
		// over yet goes to the new process first, and new clients wait in
		// the backlog meanwhile.
		cancel()
		<-served
		return h
	case err := <-served:
		// The listener was closed, or the handoff failed: the process is
		// dying, or beyond use.
		if s.ctx.Err() != nil {
			return nil
		}
		if !errors.Is(err, net.ErrClosed) && !errors.Is(err, errExited) {
			s.log.Warn("handoff failed; replacing the process", "pid", proc.Pid, "error", err)
			proc.killFor("handoff failed: " + err.Error())
		}
		select {
		case <-proc.Exited():
		case <-time.After(time.Second):
			proc.Kill()
			<-proc.Exited()
		}
	}
	return nil
}

// restart replaces a dead process and returns the new one, or nil when the
// supervisor stops or the plugin is marked failed. A standby process takes
// over at once; otherwise a new one is started after the backoff.
func (s *Supervisor) restart(dead *Process) *Process {
	crashes := s.recordCrash()
	if crashes < s.cfg.CrashLimit {
		if spare := s.takeSpare(); spare != nil {
			s.set(func() {
				if time.Since(s.startedAt) > s.cfg.CrashWindow {
					s.backoff = s.cfg.BackoffInitial
				}
				s.proc, s.state, s.startedAt = spare, Running, time.Now()
				s.restarts++
			})
			s.adopt(spare)
			s.nextBackoff() // the next spare waits longer if crashes repeat
			s.log.Info("standby process took over", "pid", spare.Pid)
			// Reaping waits on go-plugin; the spare is served meanwhile.
			s.reaping.Go(func() {
				status := s.reap(dead)
				s.set(func() { s.lastExit = status })
			})
			return spare
		}
	}
	status := s.reap(dead)
	s.set(func() {
		s.lastExit, s.state, s.proc = status, Restarting, nil
		if time.Since(s.startedAt) > s.cfg.CrashWindow {
			s.backoff = s.cfg.BackoffInitial // it had been stable: start over
		}
	})

	for attempt := 1; ; attempt++ {
		if attempt > 1 {
			crashes = s.recordCrash() // a start that failed counts as a crash
		}
		if crashes >= s.cfg.CrashLimit {
			s.fail(crashes, status)
			return nil
		}
		d := s.nextBackoff()
		s.log.Warn("restarting plugin", "attempt", attempt, "backoff", d.Round(100*time.Microsecond))
		select {
		case <-time.After(d):
		case <-s.ctx.Done():
			return nil
		case h := <-s.handovers: // a Replace while restarting: its process serves
			s.promoted(h, nil)
			return h.proc
		}

		start := time.Now()
		proc, err := s.launch()
		if err != nil {
			status = "start failed: " + err.Error()
			s.log.Error("plugin restart failed", "attempt", attempt, "error", err)
			s.set(func() { s.lastExit = status })
			continue
		}
		if s.ctx.Err() != nil { // stopped while starting
			proc.Kill()
			return nil
		}
		s.log.Info("plugin restarted", "pid", proc.Pid, "attempt", attempt, "took", time.Since(start).Round(time.Millisecond))
		s.set(func() { s.proc, s.state, s.startedAt = proc, Running, time.Now(); s.restarts++ })
		s.adopt(proc)
		return proc
	}
}

// reap waits for go-plugin to reap a dead process, kills its group, removes
// its socket directory, logs how it ended, and returns that.
func (s *Supervisor) reap(dead *Process) string {
	dead.Kill()
	status := dead.ExitStatus()
	if reason := dead.killReason(); reason != "" {
		status += " (" + reason + ")"
	}
	args := []any{"pid", dead.Pid, "status", status}
	if p := dead.Panic(); p != "" {
		args = append(args, "panic", plog.Lines(p))
	} else if tail := dead.StderrTail(); len(tail) > 0 {
		args = append(args, "stderr", plog.Lines(strings.Join(tail, "\n")))
	}
	s.log.Error("plugin process exited", args...)
	return status
}

func (s *Supervisor) nextBackoff() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := jitter(s.backoff)
	s.backoff = min(s.backoff*2, s.cfg.BackoffMax)
	return d
}

// takeSpare hands over the standby process, if there is one.
func (s *Supervisor) takeSpare() *Process {
	s.mu.Lock()
	spare := s.spare
	s.spare = nil
	s.mu.Unlock()
	if spare != nil {
		select {
		case s.taken <- struct{}{}:
		default:
		}
	}
	return spare
}

// keepSpare keeps one standby process ready until ctx is done: it starts one,
// and starts another when it is taken (after the restart backoff, so that a
// crash loop does not become a start loop) or dies.
func (s *Supervisor) keepSpare(ctx context.Context) {
	for ctx.Err() == nil {
		proc, err := s.launch()
		if err == nil {
			s.set(func() { s.spare = proc })
			select {
			case <-s.taken:
			case <-proc.Exited():
			case <-ctx.Done():
			}
			s.mu.Lock()
			mine := s.spare == proc // not promoted
			if mine {
				s.spare = nil
			}
			s.mu.Unlock()
			if mine {
				if ctx.Err() == nil {
					s.log.Warn("standby process exited", "pid", proc.Pid)
				}
				proc.Kill()
				s.set(func() {})
			}
			select { // a promotion's signal, if this spare died while taken
			case <-s.taken:
			default:
			}
		} else if ctx.Err() == nil {
			s.log.Warn("standby process failed to start", "error", err)
		}
		select {
		case <-time.After(s.nextBackoffPeek()):
		case <-ctx.Done():
		}
	}
}

// nextBackoffPeek is the wait before the next spare: the restart backoff as
// it stands, without advancing it.
func (s *Supervisor) nextBackoffPeek() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return jitter(s.backoff)
}

// launch starts and configures a new process of the plugin's binary as it
// is on disk now: the file is hashed afresh (read again only if it changed,
// see catalog.Verify), so that a binary rebuilt in place (go build over it)
// is started, and verified, as what it has become rather than refused for
// no longer matching the hash taken when it was found. Whoever makes the process the serving one calls
// adopt, which logs the change.
func (s *Supervisor) launch() (*Process, error) {
	s.mu.Lock()
	e := s.entry
	s.mu.Unlock()
	e, err := catalog.Reread(e)
	if err != nil {
		return nil, err
	}
	return s.launchEntry(s.ctx, e, nil)
}

// launchEntry starts and configures a process of binary e, with options opts
// (nil: the plugin's own), and checks that it can serve this plugin's
// listener.
func (s *Supervisor) launchEntry(ctx context.Context, e catalog.Entry, opts map[string]string) (_ *Process, err error) {
	lc := s.cfg.Launch
	lc.Entry = e
	start := time.Now()
	proc, d, err := Probe(ctx, lc)
	if err != nil {
		return nil, err
	}
	probed := time.Now()
	defer func() {
		if err == nil {
			s.log.Trace("plugin process configured", "pid", proc.Pid, "probe", probed.Sub(start).String(),
				"configure", time.Since(probed).String())
		}
	}()
	s.mu.Lock()
	transport := s.desc.GetTransport()
	rules := s.cfg.Rules
	options := s.cfg.Options
	if opts != nil {
		options = opts
	}
	s.mu.Unlock()
	if d.GetTransport() != transport {
		proc.Kill()
		return nil, fmt.Errorf("transport changed from %s to %s", TransportName(transport), TransportName(d.GetTransport()))
	}
	for _, f := range s.cfg.Needs {
		if !protocol.HasFeature(d, f) {
			proc.Kill()
			return nil, fmt.Errorf("the new binary lacks feature %q, which this host's listener needs", f)
		}
	}
	if err := proc.Configure(ctx, options, s.cfg.Listener.Addr().String(), rules); err != nil {
		proc.Kill()
		return nil, fmt.Errorf("configure: %w", err)
	}
	// SetRules ran meanwhile and did not reach this process: catch it up.
	s.mu.Lock()
	now := s.cfg.Rules
	s.mu.Unlock()
	if now != rules {
		if err := proc.SetRules(ctx, now); err != nil {
			proc.Kill()
			return nil, fmt.Errorf("set rules: %w", err)
		}
	}
	return proc, nil
}

// recordCrash records a crash and returns how many fell within the window.
func (s *Supervisor) recordCrash() int {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.crashes = append(s.crashes, now)
	recent := s.crashes[:0]
	for _, t := range s.crashes {
		if now.Sub(t) <= s.cfg.CrashWindow {
			recent = append(recent, t)
		}
	}
	s.crashes = recent
	return len(recent)
}

// requeue gives connections back to the listener, which sends them to the
// next process: those the plugin returned, and those it left unanswered when
// it exited. A listener that cannot take them back closes them.
func (s *Supervisor) requeue(ids []uint64, fds []int) {
	if r, ok := s.cfg.Listener.(interface{ Requeue([]uint64, []int) }); ok {
		r.Requeue(ids, fds)
		return
	}
	for _, fd := range fds {
		syscall.Close(fd)
	}
}

// fail marks the plugin failed and closes its listener, so that its clients
// are refused rather than left waiting.
func (s *Supervisor) fail(crashes int, status string) {
	msg := fmt.Sprintf("crashed %d times within %s; last: %s", crashes, s.cfg.CrashWindow, status)
	s.log.Error("plugin marked failed; its listener now refuses connections", "crashes", crashes, "window", s.cfg.CrashWindow, "last", status)
	s.cfg.Listener.Close()
	s.set(func() { s.state = Failed; s.err = msg })
}

// Shutdown stops the plugin gracefully: its listener closes (new clients
// are refused), the process is asked to drain within Config.DrainTimeout,
// then stopped; replaced processes still draining finish too. It returns
// once all that is done and Run has returned, or with ctx's error when ctx is
// done first: the stop goes on, and Close cuts it short. Every call to the
// plugin on the way has a deadline inside the drain timeout plus
// stopSettle, drainGrace and stopTimeout.
func (s *Supervisor) Shutdown(ctx context.Context) error {
	s.stopAsked.Store(true)
	s.shutOnce.Do(func() {
		s.shutting.Store(true)
		go func() {
			defer close(s.shutDone)
			s.drainAndStop()
		}()
	})
	select {
	case <-s.shutDone:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// drainAndStop is Shutdown's work, on a goroutine of its own.
func (s *Supervisor) drainAndStop() {
	s.cancel() // first, so that Run takes the closed listener for a stop
	s.cfg.Listener.Close()
	if s.ran.Load() {
		<-s.done
	}
	proc := s.current()
	if proc != nil {
		// A plugin whose control service does not answer costs this second,
		// then the drain's.
		proc.settle(context.Background(), stopSettle)
		forced, err := proc.Drain(context.Background(), s.cfg.DrainTimeout)
		switch {
		case err != nil:
			// A plugin that does not answer Drain will not answer
			// go-plugin's graceful stop either.
			s.log.Warn("drain failed; killing the plugin", "pid", proc.Pid, "error", rpcMessage(err))
			proc.Kill()
		case forced > 0:
			s.log.Warn("drain timeout: connections closed", "pid", proc.Pid, "forced", forced)
			proc.Stop()
		default:
			proc.Stop()
		}
	}
	s.retiring.Wait() // replaced processes still draining
	s.watching.Wait()
	s.set(func() {
		if s.state != Failed {
			s.state = Stopped
		}
	})
}

// closeWait bounds how long Close waits, after killing every process, for
// the supervisor's goroutines to notice.
const closeWait = 5 * time.Second

// Close stops at once: every process of the plugin (serving, standby,
// replaced and draining) is killed with its process group, the listener is
// closed, and a Shutdown in progress is cut short. It waits, at most
// closeWait, for Run and the supervisor's other goroutines to return; past
// that it returns an error and leaves them (a last resort: every wait they
// make is bounded by a kill). It is safe to call more than once, and after
// Shutdown.
func (s *Supervisor) Close() error {
	s.stopAsked.Store(true)
	s.kill()
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.killProcesses()
		if s.ran.Load() {
			<-s.done
		}
		s.retiring.Wait()
		s.watching.Wait()
		if s.shutting.Load() {
			<-s.shutDone
		}
	}()
	t := time.NewTimer(closeWait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		return fmt.Errorf("plugin %s: its supervisor did not stop within %s of the kill", s.desc.GetName(), closeWait)
	}
	s.set(func() { s.state = Stopped })
	return nil
}

// kill cancels the supervisor, ends the Watch contexts, kills the process
// group of every process of the plugin and closes the listener, without
// waiting for anything.
func (s *Supervisor) kill() {
	s.cancel()
	s.killOnce.Do(func() { close(s.killed) })
	s.mu.Lock()
	procs := []*Process{s.proc, s.spare}
	for p := range s.retired {
		procs = append(procs, p)
	}
	s.mu.Unlock()
	for _, p := range procs {
		if p != nil {
			p.killGroup()
		}
	}
	s.cfg.Listener.Close()
}

// killProcesses kills the serving and the replaced processes and waits until
// go-plugin lets go of them (each bounded by killWait).
func (s *Supervisor) killProcesses() {
	if proc := s.current(); proc != nil {
		proc.Kill()
	}
	s.mu.Lock()
	retired := make([]*Process, 0, len(s.retired))
	for p := range s.retired {
		retired = append(retired, p)
	}
	s.mu.Unlock()
	for _, p := range retired {
		p.Kill()
	}
}

// Done is closed when Run has returned.
func (s *Supervisor) Done() <-chan struct{} { return s.done }

func jitter(d time.Duration) time.Duration {
	// ±20%, so that plugins that crashed together do not restart in step.
	f := 0.8 + 0.4*rand.Float64()
	return time.Duration(float64(d) * f)
}

// TransportName is the lower-case name of a transport.
func TransportName(t protocol.Transport) string {
	switch t {
	case protocol.Transport_TRANSPORT_TCP:
		return "tcp"
	case protocol.Transport_TRANSPORT_UDP:
		return "udp"
	}
	return "unknown"
}

// rpcMessage reduces a gRPC error to its message.
func rpcMessage(err error) string {
	if st, ok := status.FromError(err); ok {
		return st.Message()
	}
	return err.Error()
}
