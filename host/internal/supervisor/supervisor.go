// Package supervisor runs plugin processes: it launches each with go-plugin
// (the only importer of go-plugin's client), configures it, feeds it the
// connections its listener accepts, restarts it with capped, jittered
// exponential backoff when it dies, marks it failed when it crash-loops, and
// drains and stops it on shutdown.
//
// Lifecycle of one plugin: Probe launches the first process and asks it what
// it is; the caller binds the listener and calls Configure; New and Run take it
// from there until Shutdown or Kill.
package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/status"

	"github.com/sockplay/sockplay/host/internal/listen"
	"github.com/sockplay/sockplay/sdk/protocol"
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
	p, err := Launch(lc)
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
	return p, d, nil
}

// Configure passes the plugin its options and the address the host bound for
// it. The plugin's refusal comes back as its own one-line message.
func (p *Process) Configure(ctx context.Context, options map[string]string, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := p.Control.Configure(ctx, &protocol.ConfigureRequest{Options: options, ListenAddr: addr}); err != nil {
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

	BackoffInitial time.Duration
	BackoffMax     time.Duration
	CrashLimit     int
	CrashWindow    time.Duration
	// OnChange, if set, is called after every change of state.
	OnChange func()
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
}

// Supervisor keeps one plugin served.
type Supervisor struct {
	cfg  Config
	log  hclog.Logger
	desc *protocol.Description

	ctx    context.Context // cancelled by Shutdown and Kill
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
}

// New returns a supervisor for a process that Probe launched and that was
// configured.
func New(cfg Config, proc *Process, desc *protocol.Description) *Supervisor {
	ctx, cancel := context.WithCancel(context.Background())
	return &Supervisor{
		cfg: cfg, log: cfg.Launch.Logger, desc: desc,
		ctx: ctx, cancel: cancel, done: make(chan struct{}),
		proc: proc, startedAt: time.Now(), backoff: cfg.BackoffInitial, state: Running,
	}
}

// Status returns a snapshot.
func (s *Supervisor) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{
		Name: s.desc.GetName(), Version: s.desc.GetVersion(), Transport: transportName(s.desc.GetTransport()),
		Addr: s.cfg.Listener.Addr().String(), State: s.state, Restarts: s.restarts, LastExit: s.lastExit, Error: s.err,
	}
	if s.proc != nil && s.state == Running {
		st.Pid = s.proc.Pid
	}
	return st
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
// process when it dies, until Shutdown or Kill, or until the plugin is marked
// failed. Run must be called once.
func (s *Supervisor) Run() {
	defer close(s.done)
	proc := s.current()
	for proc != nil {
		s.serve(proc)
		if s.ctx.Err() != nil {
			return
		}
		proc = s.restart(proc)
	}
}

func (s *Supervisor) current() *Process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc
}

// serve hands connections to proc until it dies or the supervisor stops.
func (s *Supervisor) serve(proc *Process) {
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- s.cfg.Listener.Serve(ctx, proc) }()
	select {
	case <-proc.Exited():
		cancel()
		<-served
	case <-s.ctx.Done():
		proc.interruptSend() // a plugin that does not read must not hold up a stop
		<-served
	case err := <-served:
		// The listener was closed, or the handoff failed: the process is
		// dying, or beyond use.
		if s.ctx.Err() != nil {
			return
		}
		if !errors.Is(err, net.ErrClosed) {
			s.log.Warn("handoff failed; replacing the process", "pid", proc.Pid, "error", err)
		}
		select {
		case <-proc.Exited():
		case <-time.After(time.Second):
			proc.Kill()
			<-proc.Exited()
		}
	}
}

// restart replaces a dead process, with backoff, and returns the new one, or
// nil when the supervisor stops or the plugin is marked failed.
func (s *Supervisor) restart(dead *Process) *Process {
	dead.Kill() // waits for go-plugin to reap it; kills its group; removes its socket directory
	status := dead.ExitStatus()
	tail := dead.StderrTail()
	s.log.Error("plugin process exited", "pid", dead.Pid, "status", status, "last_stderr", tail)
	s.set(func() {
		s.lastExit, s.state, s.proc = status, Restarting, nil
		if time.Since(s.startedAt) > s.cfg.CrashWindow {
			s.backoff = s.cfg.BackoffInitial // it had been stable: start over
		}
	})

	for attempt := 1; ; attempt++ {
		if s.crashLoop(status) {
			return nil
		}
		s.mu.Lock()
		d := jitter(s.backoff)
		s.backoff = min(s.backoff*2, s.cfg.BackoffMax)
		s.mu.Unlock()
		s.log.Warn("restarting plugin", "attempt", attempt, "backoff", d)
		select {
		case <-time.After(d):
		case <-s.ctx.Done():
			return nil
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
		return proc
	}
}

func (s *Supervisor) launch() (*Process, error) {
	proc, d, err := Probe(s.ctx, s.cfg.Launch)
	if err != nil {
		return nil, err
	}
	if d.GetTransport() != s.desc.GetTransport() {
		proc.Kill()
		return nil, fmt.Errorf("transport changed from %s to %s", transportName(s.desc.GetTransport()), transportName(d.GetTransport()))
	}
	if err := proc.Configure(s.ctx, s.cfg.Options, s.cfg.Listener.Addr().String()); err != nil {
		proc.Kill()
		return nil, fmt.Errorf("configure: %w", err)
	}
	return proc, nil
}

// crashLoop records a crash and, past the limit within the window, marks the
// plugin failed and closes its listener, so that its clients are refused
// rather than left waiting.
func (s *Supervisor) crashLoop(status string) bool {
	now := time.Now()
	s.mu.Lock()
	s.crashes = append(s.crashes, now)
	recent := s.crashes[:0]
	for _, t := range s.crashes {
		if now.Sub(t) <= s.cfg.CrashWindow {
			recent = append(recent, t)
		}
	}
	s.crashes = recent
	n := len(recent)
	s.mu.Unlock()
	if n < s.cfg.CrashLimit {
		return false
	}
	msg := fmt.Sprintf("crashed %d times within %s; last: %s", n, s.cfg.CrashWindow, status)
	s.log.Error("plugin marked failed; its listener now refuses connections", "crashes", n, "window", s.cfg.CrashWindow, "last", status)
	s.cfg.Listener.Close()
	s.set(func() { s.state = Failed; s.err = msg })
	return true
}

// Shutdown stops accepting (the listener is closed), asks the process to
// drain within drainTimeout, then stops it. It waits for Run to return.
func (s *Supervisor) Shutdown(drainTimeout time.Duration) {
	s.cancel() // first, so that Run takes the closed listener for a stop
	s.cfg.Listener.Close()
	<-s.done
	proc := s.current()
	if proc != nil {
		if forced, err := proc.Drain(context.Background(), drainTimeout); err != nil {
			s.log.Warn("drain failed", "pid", proc.Pid, "error", rpcMessage(err))
		} else if forced > 0 {
			s.log.Warn("drain timeout: connections closed", "pid", proc.Pid, "forced", forced)
		}
		proc.Stop()
	}
	s.set(func() {
		if s.state != Failed {
			s.state = Stopped
		}
	})
}

// Kill stops at once: no drain.
func (s *Supervisor) Kill() {
	s.cancel()
	if proc := s.current(); proc != nil {
		proc.Kill()
	}
	s.cfg.Listener.Close()
	<-s.done
	s.set(func() { s.state = Stopped })
}

// Done is closed when Run has returned.
func (s *Supervisor) Done() <-chan struct{} { return s.done }

func jitter(d time.Duration) time.Duration {
	// ±20%, so that plugins that crashed together do not restart in step.
	f := 0.8 + 0.4*rand.Float64()
	return time.Duration(float64(d) * f)
}

func transportName(t protocol.Transport) string {
	switch t {
	case protocol.Transport_TRANSPORT_TCP:
		return "tcp"
	case protocol.Transport_TRANSPORT_UDP:
		return "udp"
	}
	return "unknown"
}

// TransportName is the lower-case name of a transport.
func TransportName(t protocol.Transport) string { return transportName(t) }

// rpcMessage reduces a gRPC error to its message.
func rpcMessage(err error) string {
	if st, ok := status.FromError(err); ok {
		return st.Message()
	}
	return err.Error()
}

// jsonMessage reduces an hclog JSON line to "message: error", or returns the
// line as it is.
func jsonMessage(line string) string {
	var m map[string]any
	if json.Unmarshal([]byte(line), &m) != nil {
		return line
	}
	msg, _ := m["@message"].(string)
	if e, ok := m["error"].(string); ok {
		msg += ": " + e
	}
	if msg == "" {
		return line
	}
	return msg
}
