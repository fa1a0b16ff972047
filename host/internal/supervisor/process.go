package supervisor

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
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

	client      *plugin.Client
	cmd         *exec.Cmd
	handoff     *net.UnixConn
	sender      *fdpass.Sender
	sendMu      sync.Mutex
	interrupted atomic.Bool
	abandoned   atomic.Bool // CloseHandoff: the process must exit by itself
	sockDir     string
	stderr      *relay
	stdout      *relay

	exited   chan struct{} // closed when the process is gone
	stopOnce sync.Once
}

// LaunchConfig says how to start a plugin process.
type LaunchConfig struct {
	Entry        catalog.Entry
	RunDir       string // the host's run directory; each process gets a socket directory in it
	LogLevel     hclog.Level
	Logger       hclog.Logger // the plugin's logger, named after it
	StartTimeout time.Duration
}

// Launch starts the plugin binary with go-plugin (gRPC, AutoMTLS, the binary's
// SHA-256 in SecureConfig), gives it its end of a fresh handoff socket, and
// connects to its control service. The process leads its own process group,
// so that stopping it stops whatever it started.
func Launch(lc LaunchConfig) (*Process, error) {
	hostEnd, childEnd, err := fdpass.Pair()
	if err != nil {
		return nil, err
	}
	defer childEnd.Close() // the child has its copy once started

	sockDir, err := os.MkdirTemp(lc.RunDir, lc.Entry.Name+"-")
	if err != nil {
		hostEnd.Close()
		return nil, fmt.Errorf("socket directory: %w", err)
	}

	cmd := exec.Command(lc.Entry.Path)
	cmd.ExtraFiles = []*os.File{childEnd}       // fd 3
	cmd.Env = append(systemd.Env(os.Environ()), // only the host talks to systemd
		protocol.HandoffFDEnv+"=3",
		protocol.LogLevelEnv+"="+lc.LogLevel.String(),
		plugin.EnvUnixSocketDir+"="+sockDir,
	)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}

	p := &Process{
		Name:    lc.Entry.Name,
		cmd:     cmd,
		handoff: hostEnd,
		sender:  fdpass.NewSender(hostEnd),
		sockDir: sockDir,
		stderr:  newRelay(lc.Logger, "stderr"),
		stdout:  newRelay(lc.Logger, "stdout"),
		exited:  make(chan struct{}),
	}
	p.client = plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  protocol.Handshake,
		VersionedPlugins: protocol.PluginSet(nil),
		Cmd:              cmd,
		SkipHostEnv:      true, // cmd.Env already holds it, once
		SecureConfig:     &plugin.SecureConfig{Checksum: lc.Entry.SHA256, Hash: sha256.New()},
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		Logger:           goPluginLogger{lc.Logger},
		Stderr:           p.stderr,
		SyncStdout:       p.stdout,
		SyncStderr:       p.stderr,
		StartTimeout:     lc.StartTimeout,
	})

	// go-plugin bounds the start with StartTimeout.
	if err := p.connect(); err != nil {
		p.Kill()
		return nil, p.startError(err)
	}
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
		if tail := p.stderr.LastLine(); hs == "" && tail != "" {
			return fmt.Errorf("exited before its handshake: %s", tail)
		}
		return fmt.Errorf("not a sockplay plugin: it printed %q on stdout, where its go-plugin handshake line belongs (a plugin must not write to stdout before sdk.Main serves; log to stderr)", hs)
	case errors.Is(err, plugin.ErrChecksumsDoNotMatch):
		return fmt.Errorf("binary changed since it was found (SHA-256 mismatch)")
	}
	if tail := p.stderr.LastLine(); tail != "" {
		return fmt.Errorf("%s: %s", firstLine(msg), tail)
	}
	return errors.New(firstLine(msg))
}

// watch notices the process's death the moment the kernel does: the plugin's
// end of the handoff socket closes with it, and a read on the host's end
// returns EOF. The plugin never writes on that socket.
func (p *Process) watch() {
	var b [1]byte
	for {
		_, err := p.handoff.Read(b[:])
		if err != nil {
			break
		}
	}
	// Kill what the plugin may have left in its group (unless the host let
	// go of it on purpose, to watch it keep its exit duties).
	if p.Pid > 0 && !p.abandoned.Load() {
		_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
	}
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

// sendTimeout bounds how long a handoff may wait for a plugin that does not
// take its connections: past it the plugin is taken for wedged and replaced.
const sendTimeout = 5 * time.Second

// Send hands descriptors to the process. It is safe for concurrent use.
func (p *Process) Send(kind fdpass.Kind, ids []uint64, fds []int) error {
	p.sendMu.Lock()
	defer p.sendMu.Unlock()
	if p.interrupted.Load() {
		return errInterrupted
	}
	_ = p.handoff.SetWriteDeadline(time.Now().Add(sendTimeout))
	return p.sender.Send(kind, ids, fds)
}

var errInterrupted = errors.New("handoff interrupted: the supervisor is stopping")

// interruptSend makes a Send in progress, and every later one, fail at once.
func (p *Process) interruptSend() {
	p.interrupted.Store(true)
	_ = p.handoff.SetWriteDeadline(time.Unix(1, 0))
}

// Drain asks the plugin to finish its connections within timeout.
func (p *Process) Drain(ctx context.Context, timeout time.Duration) (forced uint64, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout+2*time.Second)
	defer cancel()
	resp, err := p.Control.Drain(ctx, &protocol.DrainRequest{TimeoutMs: timeout.Milliseconds()})
	if err != nil {
		return 0, err
	}
	return resp.GetForced(), nil
}

// Stop ends the process gracefully (go-plugin asks it to exit and kills it
// after two seconds), kills its process group, and removes its socket
// directory. It is safe to call more than once.
func (p *Process) Stop() {
	p.stopOnce.Do(func() {
		p.client.Kill()
		p.cleanup()
	})
}

// Kill ends the process and its group at once.
func (p *Process) Kill() {
	p.stopOnce.Do(func() {
		if p.cmd.Process != nil {
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		}
		p.client.Kill()
		p.cleanup()
	})
}

func (p *Process) cleanup() {
	if p.cmd.Process != nil {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	}
	p.handoff.Close()
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
