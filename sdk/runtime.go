package sdk

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sockplay/sockplay/sdk/protocol"
	"github.com/sockplay/sockplay/sdk/protocol/fdpass"
	"github.com/sockplay/sockplay/sdk/protocol/plog"
	"github.com/sockplay/sockplay/sdk/protocol/rules"
)

// servePlugin is Main when the host started the binary: it serves the control
// service through go-plugin and the connections handed over on the handoff
// socket, until the host stops it or goes away.
func servePlugin(p *Plugin) int {
	level := hclog.LevelFromString(os.Getenv(protocol.LogLevelEnv))
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	// os.Stderr is captured here, before plugin.Serve redirects the standard
	// streams: go-plugin parses these JSON lines into the host's log.
	// The host names the logger after the plugin.
	log := plog.New(&hclog.LoggerOptions{Output: plog.JSONOutput(os.Stderr), JSONFormat: true, Level: level})
	rt := &runtime{p: p, log: log, configured: make(chan struct{})}
	if !eventsDisabled() {
		rt.events = newEventQueue()
	}

	if err := startHandoff(rt); err != nil {
		log.Error("handoff socket", "error", err)
		return 1
	}

	restoreStdout()
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  protocol.Handshake,
		VersionedPlugins: protocol.PluginSet(rt),
		GRPCServer:       plugin.DefaultGRPCServer,
		Logger: hclog.New(&hclog.LoggerOptions{Name: "go-plugin", Output: plog.JSONOutput(os.Stderr),
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
	gate       *rules.Gate   // the host's rules, where this process accepts or receives
	configured chan struct{} // closed once Configure succeeded

	events *eventQueue // nil with SOCKPLAY_EVENTS=off

	// batches counts the handoff messages taken and passed to the server
	// (Stats.handoff_batches): before a drain the host waits until it has
	// reached what it sent, so that no connection still in the handoff
	// socket is closed unserved.
	batches atomic.Uint64
}

var _ protocol.ControlServer = (*runtime)(nil)

func (rt *runtime) Describe(context.Context, *protocol.DescribeRequest) (*protocol.Description, error) {
	p := rt.p
	d := &protocol.Description{
		Name:        p.Name,
		Version:     p.Version,
		Summary:     p.Summary,
		Transport:   p.transport(),
		DefaultAddr: p.DefaultAddr,
		Features:    features(rt.events != nil),
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
	r, err := rt.compileRules(req.GetRules())
	if err != nil {
		return nil, err
	}
	gate := rules.NewGate(r)
	gate.OnRefuse(rt.refused)
	switch {
	case rt.p.TCP != nil:
		h, err := rt.p.TCP(cfg)
		if err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		rt.srv = NewServer(h, rt.log)
		rt.srv.gate = gate
		rt.srv.events = rt.events
	case rt.p.UDP != nil:
		h, err := rt.p.UDP(cfg)
		if err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		rt.psrv = NewPacketServer(h, rt.log)
		rt.psrv.gate = gate
		rt.psrv.events = rt.events
	}
	rt.gate = gate
	if r != nil {
		rt.log.Debug("rules", "rules", r.String())
	}
	if rt.events != nil {
		rt.events.traceBytes.Store(int64(req.GetTraceBytes()))
	}
	close(rt.configured)
	rt.log.Debug("configured", "listen", req.GetListenAddr())
	return &protocol.ConfigureResponse{}, nil
}

// SetRules replaces the rules the plugin enforces. Connections already open
// stay open and keep counting against the limits.
func (rt *runtime) SetRules(_ context.Context, req *protocol.SetRulesRequest) (*protocol.SetRulesResponse, error) {
	r, err := rt.compileRules(req.GetRules())
	if err != nil {
		return nil, err
	}
	rt.mu.Lock()
	gate := rt.gate
	rt.mu.Unlock()
	if gate == nil {
		return nil, status.Error(codes.FailedPrecondition, "not configured")
	}
	gate.SetRules(r)
	rt.log.Debug("rules replaced", "rules", r.String())
	return &protocol.SetRulesResponse{}, nil
}

func (rt *runtime) compileRules(p *protocol.Rules) (*rules.Rules, error) {
	r, err := rules.Compile(p)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, "rules: "+err.Error())
	}
	if r.Counts() && rt.p.UDP != nil {
		return nil, status.Error(codes.InvalidArgument, "rules: a UDP plugin has no connections to limit")
	}
	return r, nil
}

// refused logs a connection or datagram the rules refused, at most once per
// source per second.
func (rt *runtime) refused(rf rules.Refusal) {
	if rt.events != nil {
		rt.events.refused(rf.Peer.String(), rf.Local, string(rf.Reason))
	}
	if !rf.Log {
		return
	}
	args := []any{"reason", string(rf.Reason), "peer", rf.Peer.String()}
	if rf.Err != nil {
		args = append(args, "error", rf.Err.Error())
	}
	rt.log.Info("refused", args...)
}

func (rt *runtime) Health(context.Context, *protocol.HealthRequest) (*protocol.HealthResponse, error) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	configured := rt.srv != nil || rt.psrv != nil
	return &protocol.HealthResponse{Serving: configured && !rt.draining, Draining: rt.draining}, nil
}

func (rt *runtime) Stats(context.Context, *protocol.StatsRequest) (*protocol.StatsResponse, error) {
	srv, psrv := rt.servers()
	batches := rt.batches.Load()
	if psrv != nil {
		return &protocol.StatsResponse{Panics: psrv.Stats().Panics, HandoffBatches: batches}, nil
	}
	if srv == nil {
		return &protocol.StatsResponse{HandoffBatches: batches}, nil
	}
	st := srv.Stats()
	return &protocol.StatsResponse{ConnsActive: uint64(max(st.Active, 0)), ConnsTotal: st.Total, Panics: st.Panics,
		HandoffBatches: batches}, nil
}

// Drain first stops taking new connections and datagrams, and only then
// says draining in Health: a host that replaces this process waits for that
// before it reports the replace done, so that every client after it reaches
// the new process (SPEC.md, Health).
func (rt *runtime) Drain(ctx context.Context, req *protocol.DrainRequest) (*protocol.DrainResponse, error) {
	srv, psrv := rt.servers()
	if srv != nil {
		srv.stopAccepting()
	}
	if psrv != nil {
		psrv.stopReading()
	}
	rt.mu.Lock()
	rt.draining = true
	rt.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, time.Duration(req.GetTimeoutMs())*time.Millisecond)
	defer cancel()
	start := time.Now()
	var servers []drainer
	if srv != nil {
		servers = append(servers, srv)
	}
	if psrv != nil {
		servers = append(servers, psrv)
	}
	var forced uint64
	for _, s := range servers {
		before := s.Stats().Forced
		// Shutdown's error says only that it had to force: the count is
		// what the host wants.
		_ = s.Shutdown(ctx)
		forced += s.Stats().Forced - before
	}
	if rt.events != nil {
		// The events of the connections the drain ended reach the host
		// before Drain answers, and so before the host stops the process.
		fctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
		rt.events.flush(fctx)
		cancel()
	}
	rt.log.Info("drained", "forced", forced, "took", time.Since(start).Round(time.Millisecond).String())
	return &protocol.DrainResponse{Forced: forced}, nil
}

// drainer is what Drain needs of a Server or a PacketServer.
type drainer interface {
	Shutdown(ctx context.Context) error
	Stats() Stats
}

func (rt *runtime) servers() (*Server, *PacketServer) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.srv, rt.psrv
}

// accept serves a shared socket the host handed over ('P', 'L'); a
// connection ('C') reaches it only when this plugin serves no TCP.
func (rt *runtime) accept(srv *Server, psrv *PacketServer, h fdpass.Handoff) {
	if h.File == nil {
		rt.log.Error("handed-off socket cut off: out of descriptors", "kind", string(rune(h.Kind)))
		return
	}
	defer h.File.Close()
	switch {
	case h.Kind == fdpass.Packet && psrv != nil:
		pc, err := net.FilePacketConn(h.File)
		if err != nil {
			rt.log.Error("handed-off UDP socket", "error", err)
			return
		}
		// Serve blocks until Drain's Shutdown (which waits for its handler)
		// or its handler returns; the handoff loop goes on meanwhile.
		go func() { _ = psrv.Serve(pc) }()
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
	default:
		rt.log.Error("handoff of a kind this plugin does not serve", "kind", string(rune(h.Kind)), "conn", h.ID)
	}
}

// features lists the optional parts of the contract this SDK implements.
func features(events bool) []string {
	f := []string{protocol.FeatureListener, protocol.FeatureRules, protocol.FeatureHandoffAck}
	if events {
		f = append(f, protocol.FeatureEvents, protocol.FeatureTrace)
	}
	return f
}
