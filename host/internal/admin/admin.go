// Package admin is the host's HTTP endpoint (`sockplay serve --admin ADDR`,
// 127.0.0.1:12380 by default): Prometheus metrics, the status as JSON, a
// live web page, and the event and trace streams that the page and
// `sockplay trace` follow.
//
//	GET /                          the web page (assets embedded; nothing from the network)
//	GET /plugins/NAME              the page, showing one plugin
//	GET /metrics                   Prometheus text format (observe.Collector, Go and process collectors)
//	GET /api/status                the JSON of `sockplay status --json`
//	GET /api/plugins/NAME          {"plugin": status, "connections": [...], "events": [...]}
//	GET /api/connections[?plugin=NAME]  the open connections
//	GET /api/events[?plugin=NAME]  the recent events, oldest first
//	GET /api/stream[?plugin=NAME]  Server-Sent Events: "status", "event", "trace" (the page)
//	GET /api/trace[?plugin=NAME]   Server-Sent Events: "trace" records from now on (sockplay trace)
//
// A plugin NAME the host does not serve gets 404 on every per-plugin path.
// The endpoint serves loopback addresses only, unless a token is set: then
// every request must carry "Authorization: Bearer TOKEN" (RFC 6750), and a
// request without it gets 401.
//
// Without a token, a web page the user visits must not read the endpoint
// (status, events, metrics and, in trace mode, the bytes of logins) by DNS
// rebinding: its own name, made to resolve to 127.0.0.1, would make its
// requests same-origin. So, as Transmission's fix for the same report
// (CVE-2018-5702: a whitelist of host names) and as a rebinding defence must
// (the browser sends the name it resolved in Host):
//
//   - a request whose Host is not the bound address, "localhost" or a
//     loopback literal (127.0.0.0/8, ::1), with any port, gets 421
//     Misdirected Request;
//   - a request with an Origin header (every cross-origin one; the page's
//     event stream) whose host is not one of those gets 403, whether or not
//     a token is set;
//   - only GET and HEAD are served (405 otherwise): nothing on the endpoint
//     changes anything, no CORS header is ever sent (so no preflight
//     succeeds), and what changes the host (reload) is the control socket,
//     a Unix socket of mode 0600 that no browser reaches;
//   - responses may not be framed (X-Frame-Options, CSP frame-ancestors) nor
//     embedded by another origin (Cross-Origin-Resource-Policy: same-origin).
package admin

import (
	"context"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sockplay/sockplay/host/internal/observe"
)

//go:embed web
var webFS embed.FS

// Config configures a Server.
type Config struct {
	// Addr is HOST:PORT to listen on.
	Addr string
	// Token, when set, is required of every request as a bearer token; it
	// is what allows an address outside loopback.
	Token string
	// Observer is where the counters, connections, events and traces come
	// from.
	Observer *observe.Observer
	// Status returns the object `sockplay status --json` prints.
	Status func() any
	// States returns the supervisor's side of each plugin for the metrics.
	States func() []observe.PluginState
	Logger hclog.Logger
}

// Server is the admin endpoint.
type Server struct {
	cfg  Config
	log  hclog.Logger
	ln   net.Listener
	srv  *http.Server
	done chan struct{}

	ctx    context.Context // the streams' context, cancelled by Close
	cancel context.CancelFunc
}

// Listen binds cfg.Addr (config.CheckAdmin has checked it). Serve serves
// on it.
func Listen(cfg Config) (*Server, error) {
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("--admin %s: %w", cfg.Addr, err)
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{cfg: cfg, log: cfg.Logger, ln: ln, done: make(chan struct{}), ctx: ctx, cancel: cancel}
	s.srv = &http.Server{
		Handler:           s.handler(),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       time.Minute,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	return s, nil
}

// Addr is the bound address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// URL is the page's address.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() + "/" }

// Serve serves on a goroutine of its own until Close.
func (s *Server) Serve() {
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("admin endpoint stopped", "error", err)
		}
	}()
}

// Close ends the streams and stops the server (within 2 s).
func (s *Server) Close() {
	s.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		s.srv.Close()
	}
	select {
	case <-s.done:
	default:
		s.ln.Close() // Serve was never called
	}
}

func (s *Server) handler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(observe.NewCollector(s.cfg.Observer, s.cfg.States),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	mux := http.NewServeMux()
	static, _ := fs.Sub(webFS, "web")
	page := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeFileFS(w, r, static, "index.html")
	}
	mux.HandleFunc("GET /{$}", page)
	mux.HandleFunc("GET /plugins/{name}", s.plugin(page))
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /api/status", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, s.cfg.Status()) })
	mux.HandleFunc("GET /api/plugins/{name}", s.plugin(s.pluginAPI))
	mux.HandleFunc("GET /api/connections", s.query(func(w http.ResponseWriter, r *http.Request, name string) {
		writeJSON(w, s.cfg.Observer.Open(name))
	}))
	mux.HandleFunc("GET /api/events", s.query(func(w http.ResponseWriter, r *http.Request, name string) {
		writeJSON(w, s.recentEvents(name, 0))
	}))
	mux.HandleFunc("GET /api/stream", s.query(s.stream))
	mux.HandleFunc("GET /api/trace", s.query(s.traceStream))
	return securityHeaders(s.sameSite(s.auth(mux)))
}

// sameSite refuses what a web page of another site could send: see the
// package doc. The Host check applies without a token only (with one, the
// endpoint may be reached by any name, and the token guards it).
func (s *Server) sameSite(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "405 method not allowed: the admin endpoint only reads", http.StatusMethodNotAllowed)
			return
		}
		if s.cfg.Token == "" && !s.localName(r.Host) {
			http.Error(w, fmt.Sprintf("421 misdirected request: Host %q is not this endpoint's address, localhost or a loopback address", r.Host),
				http.StatusMisdirectedRequest)
			return
		}
		if o := r.Header.Get("Origin"); o != "" && !s.localOrigin(o) {
			http.Error(w, fmt.Sprintf("403 forbidden: requests from origin %q are not served", o), http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// localName reports whether hostport (a Host header, a URL's host) names
// this endpoint as a browser on this machine would: the bound address,
// localhost, or a loopback literal.
func (s *Server) localName(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	if ip.Unmap().IsLoopback() {
		return true
	}
	bound, ok := s.ln.Addr().(*net.TCPAddr)
	return ok && !bound.IP.IsUnspecified() && bound.IP.Equal(net.IP(ip.AsSlice()))
}

// localOrigin reports whether an Origin header (RFC 6454: scheme://host[:port],
// or "null") is this endpoint's.
func (s *Server) localOrigin(origin string) bool {
	u, err := url.Parse(origin)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && s.localName(u.Host)
}

// auth requires the bearer token, when there is one.
func (s *Server) auth(h http.Handler) http.Handler {
	if s.cfg.Token == "" {
		return h
	}
	want := []byte("Bearer " + s.cfg.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sockplay"`)
			http.Error(w, "401 unauthorized: send Authorization: Bearer TOKEN (the host's --admin-token)", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Cross-Origin-Resource-Policy", "same-origin")
		w.Header().Set("Referrer-Policy", "no-referrer")
		h.ServeHTTP(w, r)
	})
}

// plugin serves a path with {name} only for a plugin the host serves.
func (s *Server) plugin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.cfg.Observer.Has(r.PathValue("name")) {
			notFound(w, r.PathValue("name"))
			return
		}
		h(w, r)
	}
}

// query serves a path with an optional ?plugin=NAME, which must name a
// plugin the host serves.
func (s *Server) query(h func(http.ResponseWriter, *http.Request, string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.URL.Query().Get("plugin")
		if name != "" && !s.cfg.Observer.Has(name) {
			notFound(w, name)
			return
		}
		h(w, r, name)
	}
}

func notFound(w http.ResponseWriter, name string) {
	http.Error(w, fmt.Sprintf("404 no plugin %q is served here", name), http.StatusNotFound)
}

func (s *Server) pluginAPI(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var plugin any
	b, _ := json.Marshal(s.cfg.Status())
	var st struct {
		Plugins []json.RawMessage `json:"plugins"`
	}
	_ = json.Unmarshal(b, &st)
	for _, p := range st.Plugins {
		var n struct {
			Name string `json:"name"`
		}
		if json.Unmarshal(p, &n) == nil && n.Name == name {
			plugin = p
		}
	}
	writeJSON(w, map[string]any{"plugin": plugin, "connections": s.cfg.Observer.Open(name), "events": s.recentEvents(name, 0)})
}

// recentEvents returns the kept events of plugin name ("" for all) after seq.
func (s *Server) recentEvents(name string, seq uint64) []observe.Event {
	evs, _ := s.cfg.Observer.Events().Since(seq, 0)
	out := []observe.Event{}
	for _, e := range evs {
		if name == "" || e.Plugin == name {
			out = append(out, e)
		}
	}
	return out
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// The bounds of the streams: what history a new page gets, and how often
// it is sent the status while counters change.
const (
	streamEvents   = 200
	streamTraces   = 500
	statusInterval = 250 * time.Millisecond
	// streamConns bounds the open connections each status message lists
	// (the oldest); open_count says how many there are.
	streamConns = 500
)

// sse writes Server-Sent Events (the WHATWG HTML standard, "Server-sent
// events"): "event: KIND", "id: SEQ", "data: JSON", a blank line.
type sse struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func newSSE(w http.ResponseWriter) *sse {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	return &sse{w: w, rc: http.NewResponseController(w)}
}

func (e *sse) send(kind string, id uint64, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_ = e.rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if id > 0 {
		_, err = fmt.Fprintf(e.w, "event: %s\nid: %d\ndata: %s\n\n", kind, id, b)
	} else {
		_, err = fmt.Fprintf(e.w, "event: %s\ndata: %s\n\n", kind, b)
	}
	return err
}

func (e *sse) flush() error { return e.rc.Flush() }

// stream is the page's feed: the status with the open connections (at most
// every 250 ms while anything changes), each new event, each new trace
// record; first the recent history.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, name string) {
	o := s.cfg.Observer
	out := newSSE(w)
	var evSeq, trSeq uint64
	_, evSeq = o.Events().Since(0, 0)
	_, trSeq = o.Traces().Since(0, 0)
	evSeq = max(evSeq, streamEvents) - streamEvents
	trSeq = max(trSeq, streamTraces) - streamTraces
	ctx := r.Context()
	for {
		changed, _ := o.Changed()
		conns := o.Open(name)
		count := len(conns)
		conns = conns[:min(count, streamConns)]
		if err := out.send("status", 0, map[string]any{"status": s.cfg.Status(), "connections": conns,
			"open_count": count, "now": time.Now().UTC()}); err != nil {
			return
		}
		evs, last := o.Events().Since(evSeq, 0)
		evSeq = last
		for _, e := range evs {
			if name == "" || e.Plugin == name {
				if out.send("event", e.Seq, e) != nil {
					return
				}
			}
		}
		trs, last := o.Traces().Since(trSeq, 0)
		trSeq = last
		if sendTraces(out, trs, name) != nil {
			return
		}
		if out.flush() != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-time.After(5 * time.Second): // the page's ages and uptimes move on
		}
		select { // gather what else happens in the next moment
		case <-ctx.Done():
			return
		case <-time.After(statusInterval):
		}
	}
}

// sendTraces sends the trace records of plugin name ("" for every plugin)
// as "trace" events.
func sendTraces(out *sse, trs []observe.Trace, name string) error {
	for _, t := range trs {
		if name == "" || t.Plugin == name {
			if err := out.send("trace", t.Seq, t); err != nil {
				return err
			}
		}
	}
	return nil
}

// traceStream is `sockplay trace`'s feed: the trace records from now on,
// as they come. A "hello" event says that the stream is open, and which
// plugins are in trace mode ("traced").
func (s *Server) traceStream(w http.ResponseWriter, r *http.Request, name string) {
	o := s.cfg.Observer
	out := newSSE(w)
	_, seq := o.Traces().Since(0, 1)
	names := o.Names()
	traced := []string{}
	for _, n := range names {
		if o.Stats(n).Trace {
			traced = append(traced, n)
		}
	}
	if out.send("hello", 0, map[string]any{"plugin": name, "plugins": names, "traced": traced}) != nil || out.flush() != nil {
		return
	}
	ctx := r.Context()
	for {
		changed, _ := o.Changed()
		trs, last := o.Traces().Since(seq, 0)
		seq = last
		if sendTraces(out, trs, name) != nil {
			return
		}
		if out.flush() != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-time.After(15 * time.Second):
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil || out.flush() != nil {
				return
			}
		}
	}
}
