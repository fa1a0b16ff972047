package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/sockplay/sockplay/host/internal/catalog"
	"github.com/sockplay/sockplay/host/internal/systemd"
	"github.com/sockplay/sockplay/sdk/escape"
	"github.com/sockplay/sockplay/sdk/protocol"
	"github.com/sockplay/sockplay/sdk/protocol/fdpass"
)

// Process is one running plugin process: its go-plugin client, its control
// service, and the host's end of its handoff socket.
type Process struct {
	Name    string
	Pid     int
	Control protocol.ControlClient
	// ProtocolVersion is the version go-plugin negotiated.
	ProtocolVersion int
	// Description is what the process said it is (set by Probe).
	Description *protocol.Description
	// Entry is the binary it runs, with the SHA-256 go-plugin checked.
	Entry catalog.Entry

	traceBytes uint32

	client  *plugin.Client
	cmd     *exec.Cmd
	kill    context.CancelFunc // kills the process group (cmd.Cancel)
	killed  atomic.Bool        // Kill: go-plugin's logger is quiet
	abandon atomic.Bool        // CloseHandoff: the process must exit by itself
	log     hclog.Logger
	hand    *handoff
	sockDir string
	stderr  *relay
	stdout  *relay

	exited   chan struct{} // closed when the process is gone
	watching bool          // watch runs: exited will be closed
	stopOnce sync.Once

	life     context.Context // ends when the process is stopped or gone
	endLife  context.CancelFunc
	reasonMu sync.Mutex
	reason   string // why the host killed it, for its death line
}

// LaunchConfig says how to start a plugin process.
type LaunchConfig struct {
	Entry        catalog.Entry
	RunDir       string // the host's run directory; each process gets a socket directory in it
	LogLevel     hclog.Level
	Logger       hclog.Logger // the plugin's logger, named after it
	StartTimeout time.Duration
	// TraceBytes, when positive, puts the plugin in trace mode (if it has
	// the "trace" feature): it sends the first TraceBytes bytes of each
	// connection in each direction, and of each datagram, as TRACE events.
	TraceBytes uint32
}

// Launch starts the plugin binary with go-plugin (gRPC, mutual TLS as
// AutoMTLS sets it up, with the host's certificate made once: see clientTLS),
// after checking that the binary is still the one found (catalog.Verify, the
// SHA-256 check of go-plugin's SecureConfig), gives it its end of a fresh
// handoff socket, and connects to its control service. The process leads its
// own process group, so that stopping it stops whatever it started. The start
// is bounded by lc.StartTimeout and abandoned (the process killed) when ctx
// is done.
func Launch(ctx context.Context, lc LaunchConfig) (*Process, error) {
	t0 := time.Now()
	if err := catalog.Verify(lc.Entry); err != nil {
		return nil, err
	}
	tlsConf, certPEM, err := clientTLS()
	if err != nil {
		return nil, err
	}
	hostEnd, childEnd, err := fdpass.Pair()
	if err != nil {
		return nil, err
	}
	defer childEnd.Close() // the child has its copy once started

	sockDir, err := makeSocketDir(lc.RunDir, lc.Entry.Name)
	if err != nil {
		hostEnd.Close()
		return nil, err
	}

	// The command's context is the process's kill switch: cancelling it
	// kills the process group (cmd.Cancel), whatever go-plugin is doing.
	killCtx, kill := context.WithCancel(context.Background())
	cmd := exec.CommandContext(killCtx, lc.Entry.Path)
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.ExtraFiles = []*os.File{childEnd}       // fd 3
	cmd.Env = append(systemd.Env(os.Environ()), // only the host talks to systemd
		protocol.HandoffFDEnv+"=3",
		protocol.LogLevelEnv+"="+lc.LogLevel.String(),
		plugin.EnvUnixSocketDir+"="+sockDir,
		"PLUGIN_CLIENT_CERT="+string(certPEM), // as go-plugin's AutoMTLS sets it
	)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}

	log := lc.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	p := &Process{
		Name:    lc.Entry.Name,
		Entry:   lc.Entry,
		cmd:     cmd,
		kill:    kill,
		log:     log,
		hand:    newHandoff(hostEnd, log),
		sockDir: sockDir,
		stderr:  newRelay(log, "stderr"),
		stdout:  newRelay(log, "stdout"),
		exited:  make(chan struct{}),

		traceBytes: lc.TraceBytes,
	}
	p.life, p.endLife = context.WithCancel(context.Background())
	p.client = plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  protocol.Handshake,
		VersionedPlugins: protocol.PluginSet(nil),
		Cmd:              cmd,
		SkipHostEnv:      true, // cmd.Env already holds it, once
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		TLSConfig:        tlsConf,
		Logger:           goPluginLogger{Logger: log, quiet: &p.killed},
		Stderr:           p.stderr,
		SyncStdout:       p.stdout,
		SyncStderr:       p.stderr,
		StartTimeout:     lc.StartTimeout,
	})

	// go-plugin bounds the start with StartTimeout; ctx can cut it short.
	t1 := time.Now()
	abandon := context.AfterFunc(ctx, kill)
	err = p.connect()
	abandon()
	p.stderr.release(err == nil)
	p.stdout.release(err == nil)
	if err != nil {
		p.Kill()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("start abandoned: %w", ctx.Err())
		}
		return nil, p.startError(err)
	}
	p.Control = &boundClient{ControlClient: p.Control, life: p.life, timeout: controlTimeout}
	p.watching = true
	log.Trace("plugin process started", "pid", p.Pid, "verify", t1.Sub(t0).String(),
		"handshake", time.Since(t1).String())
	go p.watch()
	return p, nil
}

func (p *Process) connect() error {
	rpc, err := p.client.Client()
	if err != nil {
		return err
	}
	if p.cmd.Process != nil {
		p.Pid = p.cmd.Process.Pid
	}
	raw, err := rpc.Dispense(protocol.PluginKey)
	if err != nil {
		return err
	}
	ctl, ok := raw.(protocol.ControlClient)
	if !ok {
		return fmt.Errorf("plugin serves %T, not the control service", raw)
	}
	p.Control = ctl
	p.ProtocolVersion = p.client.NegotiatedVersion()
	return nil
}

// startError makes go-plugin's start failure one line that says what happened,
// with the last thing the plugin wrote to stderr where that says more.
func (p *Process) startError(err error) error {
	msg := strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", " ")
	switch {
	case strings.Contains(msg, "Incompatible API version") || strings.Contains(msg, "incompatible API version"):
		return fmt.Errorf("speaks another protocol version: %s (this host speaks version %d)", firstLine(err.Error()), protocol.Version)
	case strings.Contains(msg, "Unrecognized remote plugin message"):
		hs := handshakeLine(msg)
		if hs == "" {
			if tail := p.stderr.LastLine(); tail != "" {
				return fmt.Errorf("exited before its handshake: %s", escape.String(tail))
			}
			return errors.New("exited before its handshake, saying nothing")
		}
		return fmt.Errorf("not a sockplay plugin: it printed %q on stdout, where its go-plugin handshake line belongs (is it built with sdk.Main? A Go plugin must print nothing on stdout before sdk.Main, which keeps what is printed after it off that line; a program without the SDK nothing before its handshake)", hs)
	case errors.Is(err, plugin.ErrChecksumsDoNotMatch):
		return fmt.Errorf("binary changed while it was being started (SHA-256 mismatch)")
	}
	if tail := p.stderr.LastLine(); tail != "" {
		return fmt.Errorf("%s: %s", firstLine(msg), escape.String(tail))
	}
	return errors.New(firstLine(msg))
}

// watch notices the process's death the moment the kernel does: the plugin's
// end of the handoff socket closes with it, and reading the host's end (which
// also carries the plugin's answers, see handoff) returns end of file.
func (p *Process) watch() {
	p.hand.run()
	// Kill what the plugin may have left in its group (unless the host let
	// go of it on purpose, to watch it keep its exit duties).
	if p.Pid > 0 && !p.abandon.Load() {
		_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
	}
	p.endLife()
	close(p.exited)
}

// Exited is closed when the process has died or been stopped.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// ExitStatus describes how the process ended, once Exited is closed: go-plugin
// reaps the process; this waits briefly for it to have done so.
func (p *Process) ExitStatus() string {
	deadline := time.Now().Add(2 * time.Second)
	for !p.client.Exited() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if !p.client.Exited() || p.cmd.ProcessState == nil {
		return "unknown"
	}
	return p.cmd.ProcessState.String()
}

// StderrTail returns the last lines (at most 10) the plugin wrote to stderr.
func (p *Process) StderrTail() []string { return p.stderr.Tail() }

// Panic returns the whole Go panic the plugin printed before it died, or "".
func (p *Process) Panic() string { return p.stderr.Panic() }

// Send hands descriptors to the process; see handoff.Send for who owns
// them afterwards. It is safe for concurrent use.
func (p *Process) Send(kind fdpass.Kind, ids []uint64, fds []int) error {
	return p.hand.Send(kind, ids, fds)
}

// stopSettle bounds settle on a stop, which has a deadline of its own; a
// replace, whose old process drains in the background, waits up to
// sendTimeout.
const stopSettle = time.Second

// settle waits, up to limit, until the plugin has taken every connection
// handed to it: the handoff socket is a queue, and a connection still in it
// when the plugin's server shuts down for a drain would be closed unserved.
// The plugin's Stats say what it took: handoff_batches, the messages it took
// from the handoff socket (the Go SDK), or else conns_total, the connections
// its server took (which misses those its rules refused); a plugin that
// counts neither costs the wait.
func (p *Process) settle(ctx context.Context, limit time.Duration) {
	sent, batches := p.hand.sentConns.Load(), p.hand.sentBatches.Load()
	if sent == 0 {
		return // no connection: a shared socket is not lost by a drain
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for wait := 100 * time.Microsecond; ; wait = min(2*wait, 10*time.Millisecond) {
		st, err := p.Control.Stats(ctx, &protocol.StatsRequest{})
		if err != nil || st.GetHandoffBatches() >= batches || st.GetConnsTotal() >= sent {
			return
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return
		case <-p.exited:
			return
		}
	}
}

// Ready waits until the process may be sent more connections (see
// handoff.Ready).
func (p *Process) Ready(ctx context.Context) error { return p.hand.Ready(ctx) }

// interruptSend makes a Send in progress, and every later one, fail at once.
func (p *Process) interruptSend() { p.hand.interrupt() }

// Context is done when the process has exited or been stopped: a call or a
// stream to the plugin that must not outlive it uses it (the Control client
// ends every call with it).
func (p *Process) Context() context.Context { return p.life }

// Drain asks the plugin to finish its connections within timeout. The call
// itself gets a second more.
func (p *Process) Drain(ctx context.Context, timeout time.Duration) (forced uint64, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout+drainGrace)
	defer cancel()
	resp, err := p.Control.Drain(ctx, &protocol.DrainRequest{TimeoutMs: timeout.Milliseconds()})
	if err != nil {
		return 0, err
	}
	return resp.GetForced(), nil
}

// Stop ends the process gracefully (go-plugin asks it to exit and kills it
// after two seconds), within stopTimeout whatever the plugin does: then its
// process group is killed. It removes its socket directory. It is safe to
// call more than once, and with Kill.
func (p *Process) Stop() {
	p.stopOnce.Do(func() {
		p.endLife()
		// go-plugin's graceful stop waits for an RPC with no deadline: a
		// stopped or deadlocked plugin never answers it.
		done := goDone(p.client.Kill)
		if !waitDone(done, stopTimeout) {
			p.log.Warn("plugin did not stop in time; killing its process group", "pid", p.Pid, "waited", stopTimeout.String())
			p.killGroup()
			if !waitDone(done, killWait) {
				p.log.Error("go-plugin did not let go of the killed plugin", "pid", p.Pid)
			}
		}
		p.cleanup()
	})
}

// Kill ends the process and its group at once.
func (p *Process) Kill() {
	p.stopOnce.Do(func() {
		p.killed.Store(true)
		p.endLife()
		p.killGroup()
		if !waitDone(goDone(p.client.Kill), killWait) {
			p.log.Error("go-plugin did not let go of the killed plugin", "pid", p.Pid)
		}
		p.cleanup()
	})
}

// goDone runs f on a goroutine of its own and returns a channel closed when
// f returns. Its owner waits with waitDone; go-plugin's waits that f makes end
// when the process is gone, which the owner makes sure of.
func goDone(f func()) <-chan struct{} {
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	return done
}

func waitDone(done <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// killFor kills the process for a reason the host found (it is frozen), which
// its death line gives.
func (p *Process) killFor(reason string) {
	p.reasonMu.Lock()
	p.reason = reason
	p.reasonMu.Unlock()
	p.killGroup()
}

// killReason is why the host killed the process, or "".
func (p *Process) killReason() string {
	p.reasonMu.Lock()
	defer p.reasonMu.Unlock()
	return p.reason
}

func (p *Process) killGroup() {
	p.kill() // through exec, which knows whether the process was started
	if p.Pid > 0 {
		_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
	}
}

func (p *Process) cleanup() {
	p.killGroup()
	// The plugin's end closes when it dies: then watch has read every
	// answer it wrote and given back what it did not take.
	if p.watching {
		waitDone(p.exited, killWait)
	}
	p.hand.conn.Close()
	if p.watching {
		<-p.exited
	}
	os.RemoveAll(p.sockDir)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

func handshakeLine(msg string) string {
	_, rest, _ := strings.Cut(msg, "Unrecognized remote plugin message: ")
	rest, _, _ = strings.Cut(rest, " Failed to read")
	rest, _, _ = strings.Cut(rest, " This usually means")
	if len(rest) > 80 {
		rest = rest[:80] + "..."
	}
	return strings.TrimSpace(rest)
}
