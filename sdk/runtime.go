package sdk

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sockplay/sockplay/internal/fdpass"
	"github.com/sockplay/sockplay/sdk/protocol"
)

// LogLevelEnv carries the host's log level to its plugins.
const LogLevelEnv = "SOCKPLAY_LOG_LEVEL"

// servePlugin is Main when the host started the binary: it serves the control
// service through go-plugin and the connections handed over on the handoff
// socket, until the host stops it or goes away.
func servePlugin(p *Plugin) int {
	level := hclog.LevelFromString(os.Getenv(LogLevelEnv))
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	// os.Stderr is captured here, before plugin.Serve redirects the standard
	// streams: go-plugin parses these JSON lines into the host's log.
	// The host names the logger after the plugin.
	log := hclog.New(&hclog.LoggerOptions{Output: os.Stderr, JSONFormat: true, Level: level})
	rt := &runtime{p: p, log: log, configured: make(chan struct{})}

	if fdStr := os.Getenv(protocol.HandoffFDEnv); fdStr != "" {
		fd, err := strconv.Atoi(fdStr)
		if err != nil {
			log.Error("bad handoff descriptor", "env", protocol.HandoffFDEnv, "value", fdStr)
			return 1
		}
		f := os.NewFile(uintptr(fd), "handoff")
		c, err := fdpass.FileConn(f)
		f.Close()
		if err != nil {
			log.Error("handoff socket", "error", err)
			return 1
		}
		go rt.receive(fdpass.NewReceiver(c))
	}
	go watchParent()

	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  protocol.Handshake,
		VersionedPlugins: protocol.PluginSet(rt),
		GRPCServer:       plugin.DefaultGRPCServer,
		Logger: hclog.New(&hclog.LoggerOptions{Name: "go-plugin", Output: os.Stderr,
			JSONFormat: true, Level: max(level, hclog.Warn)}),
	})
	return 0
}

// runtime is the plugin side of the control service.
type runtime struct {
	protocol.UnimplementedControlServer
	p   *Plugin
	log hclog.Logger

	mu         sync.Mutex
	srv        *Server       // TCP plugins
	psrv       *PacketServer // UDP plugins
	draining   bool
	configured chan struct{} // closed once Configure succeeded
}

var _ protocol.ControlServer = (*runtime)(nil)

func (rt *runtime) Describe(context.Context, *protocol.DescribeRequest) (*protocol.Description, error) {
	p := rt.p
	d := &protocol.Description{
		Name:        p.Name,
		Version:     p.Version,
		Summary:     p.Summary,
		Transport:   transportToProto(p.Transport),
		DefaultAddr: p.DefaultAddr,
	}
	for _, o := range p.Options {
		d.Options = append(d.Options, &protocol.Option{Name: o.Name, Default: o.Default, Help: o.Help})
	}
	return d, nil
}

func (rt *runtime) Configure(_ context.Context, req *protocol.ConfigureRequest) (*protocol.ConfigureResponse, error) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.srv != nil || rt.psrv != nil {
		return nil, status.Error(codes.FailedPrecondition, "already configured")
	}
	cfg, err := rt.p.Config(req.GetOptions(), rt.log)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	switch rt.p.Transport {
	case TCP:
		h, err := rt.p.TCP(cfg)
		if err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		rt.srv = NewServer(h, rt.log)
	case UDP:
		h, err := rt.p.UDP(cfg)
		if err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		rt.psrv = NewPacketServer(h, rt.log)
	}
	close(rt.configured)
	rt.log.Debug("configured", "listen", req.GetListenAddr())
	return &protocol.ConfigureResponse{}, nil
}

func (rt *runtime) Health(context.Context, *protocol.HealthRequest) (*protocol.HealthResponse, error) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	configured := rt.srv != nil || rt.psrv != nil
	return &protocol.HealthResponse{Serving: configured && !rt.draining, Draining: rt.draining}, nil
}

func (rt *runtime) Stats(context.Context, *protocol.StatsRequest) (*protocol.StatsResponse, error) {
	srv, psrv := rt.servers()
	if psrv != nil {
		return &protocol.StatsResponse{Panics: psrv.Panics()}, nil
	}
	if srv == nil {
		return &protocol.StatsResponse{}, nil
	}
	st := srv.Stats()
	return &protocol.StatsResponse{ConnsActive: uint64(max(st.Active, 0)), ConnsTotal: st.Total, Panics: st.Panics}, nil
}

func (rt *runtime) Drain(ctx context.Context, req *protocol.DrainRequest) (*protocol.DrainResponse, error) {
	rt.mu.Lock()
	rt.draining = true
	srv, psrv := rt.srv, rt.psrv
	rt.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, time.Duration(req.GetTimeoutMs())*time.Millisecond)
	defer cancel()
	start := time.Now()
	forced := 0
	if srv != nil {
		forced += srv.Shutdown(ctx)
	}
	if psrv != nil {
		forced += psrv.Shutdown(ctx)
	}
	rt.log.Info("drained", "forced", forced, "took", time.Since(start).Round(time.Millisecond).String())
	return &protocol.DrainResponse{Forced: uint64(forced)}, nil
}

func (rt *runtime) servers() (*Server, *PacketServer) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.srv, rt.psrv
}

// receive serves what the host hands over until the host closes its end,
// which means it is gone: then the plugin exits with everything it started.
func (rt *runtime) receive(r *fdpass.Receiver) {
	for {
		batch, err := r.Recv()
		if err != nil {
			var ne net.Error
			if errors.Is(err, fdpass.ErrShortMessage) || errors.Is(err, fdpass.ErrBadVersion) ||
				errors.Is(err, fdpass.ErrTruncated) || errors.Is(err, fdpass.ErrCountMismatch) {
				rt.log.Error("bad handoff message", "error", err)
				continue
			}
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			hostGone()
			return
		}
		<-rt.configured
		srv, psrv := rt.servers()
		for _, h := range batch {
			rt.accept(srv, psrv, h)
		}
	}
}

func (rt *runtime) accept(srv *Server, psrv *PacketServer, h fdpass.Handoff) {
	defer h.File.Close()
	switch {
	case h.Kind == fdpass.Packet && psrv != nil:
		pc, err := net.FilePacketConn(h.File)
		if err != nil {
			rt.log.Error("handed-off UDP socket", "error", err)
			return
		}
		psrv.Serve(pc)
	case h.Kind == fdpass.Listener && srv != nil:
		// The host shares its listening socket: this process accepts.
		ln, err := net.FileListener(h.File)
		if err != nil {
			rt.log.Error("handed-off listener", "error", err)
			return
		}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, ErrServerClosed) {
				rt.log.Error("accept on the shared listener", "error", err)
			}
		}()
	case h.Kind == fdpass.Conn && srv != nil:
		c, err := net.FileConn(h.File)
		if err != nil {
			rt.log.Error("handed-off connection", "conn", h.ID, "error", err)
			return
		}
		srv.ServeConn(c)
	default:
		rt.log.Error("handoff of a kind this plugin does not serve", "kind", string(rune(h.Kind)), "conn", h.ID)
	}
}

// watchParent is the fallback watchdog for a plugin that has no handoff socket:
// when the host dies the plugin is re-parented, and it exits.
func watchParent() {
	parent := os.Getppid()
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for range t.C {
		if os.Getppid() != parent {
			hostGone()
			return
		}
	}
}

// hostGone ends the plugin and everything it started: the host starts each
// plugin as the leader of its own process group, so killing the group takes
// the plugin's children too.
func hostGone() {
	removeSocketDir()
	// Nothing is logged: the host read our stderr, and a write to it now could
	// end the process with SIGPIPE before the group is killed.
	if pid := os.Getpid(); syscall.Getpgrp() == pid {
		_ = syscall.Kill(-pid, syscall.SIGKILL) // the plugin and all it started
	}
	os.Exit(1)
}

// removeSocketDir removes the directory the host made for this process's
// go-plugin socket, and the host's run directory once it is empty: a host
// killed with SIGKILL cannot.
func removeSocketDir() {
	dir := os.Getenv(plugin.EnvUnixSocketDir)
	if dir == "" || !strings.HasPrefix(filepath.Base(filepath.Dir(dir)), "sockplay-") {
		return
	}
	_ = os.RemoveAll(dir)
	_ = os.Remove(filepath.Dir(dir)) // fails while other plugins' directories are there
}

func transportToProto(t Transport) protocol.Transport {
	switch t {
	case TCP:
		return protocol.Transport_TRANSPORT_TCP
	case UDP:
		return protocol.Transport_TRANSPORT_UDP
	}
	return protocol.Transport_TRANSPORT_UNSPECIFIED
}
