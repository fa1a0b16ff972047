package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// The control socket is how `sockplay reload` (and `sockplay dev`, when a
// host already runs) reach a running host: HTTP/1.1 over a Unix socket
// beside the status file (status.json: status.sock), whose path the status
// file also records (StatusReport.Control), so that the one --status-file
// finds both. The socket is made mode 0600: only the host's user can
// connect, with no token and no port. It is removed when the host stops; one
// left by a host that was killed is taken over by the next host with that
// status file. A path longer than a socket address holds (108 bytes,
// unix(7)) falls back to the host's run directory, mode 0700.
//
//	POST /v1/reload   body: a ReloadRequest, {"plugins": ["echo"]} or {}
//	  200  {"results": [ReloadResult...]}
//	  404  {"error": "no plugin \"nosuch\": ..."}   an UnknownPluginError
//	  409  {"error": "the host is stopping"}
//	  400  {"error": "..."}                          a body that is not a ReloadRequest
const maxSocketPath = 107

// maxControlBody bounds a request body.
const maxControlBody = 64 << 10

// controlServer serves the control socket; the Host owns it.
type controlServer struct {
	path   string
	srv    *http.Server
	done   chan struct{} // closed when Serve returned
	closed chan struct{} // closed when stopControl's shutdown of the server is done
}

// startControl opens the control socket. A host without one serves all the
// same; `sockplay reload` then says so.
func (h *Host) startControl() {
	if h.cfg.StatusFile == "" {
		return // nothing would tell `sockplay reload` where it is
	}
	path := strings.TrimSuffix(h.cfg.StatusFile, filepath.Ext(h.cfg.StatusFile)) + ".sock"
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	if len(path) > maxSocketPath {
		path = filepath.Join(h.runDir, "control.sock")
	}
	ln, err := listenControl(path)
	if err != nil {
		h.log.Warn("no control socket: sockplay reload cannot reach this host", "error", err)
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/reload", h.handleReload)
	c := &controlServer{
		path: path,
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ErrorLog: h.log.Named("control").StandardLogger(nil)},
		done: make(chan struct{}), closed: make(chan struct{}),
	}
	go func() {
		defer close(c.done)
		_ = c.srv.Serve(ln)
	}()
	h.mu.Lock()
	h.control = c
	h.mu.Unlock()
}

// listenControl listens on the Unix socket path, mode 0600, taking over a
// socket that a killed host left behind (nothing answers on it) but never
// one that a running host serves.
func listenControl(path string) (net.Listener, error) {
	ln, err := net.Listen("unix", path)
	if err != nil && errors.Is(err, syscall.EADDRINUSE) {
		if c, derr := net.DialTimeout("unix", path, time.Second); derr == nil {
			c.Close()
			return nil, fmt.Errorf("%s: another host serves it", path)
		}
		if rerr := os.Remove(path); rerr != nil {
			return nil, rerr
		}
		ln, err = net.Listen("unix", path)
	}
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// stopControl closes the control socket: no new request is taken, and a
// reload in progress, which the stop cuts short, still gets its answer (a
// 409) within controlDrain; waitControl waits for that.
func (h *Host) stopControl() {
	h.mu.Lock()
	c := h.control
	h.mu.Unlock()
	if c == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), controlDrain)
	go func() {
		defer close(c.closed)
		defer cancel()
		if c.srv.Shutdown(ctx) != nil {
			c.srv.Close()
		}
	}()
	<-c.done
}

// controlDrain bounds how long a stop lets the control socket's requests in
// progress answer.
const controlDrain = 2 * time.Second

// waitControl waits until the control socket's server has let go of every
// connection (stopControl).
func (h *Host) waitControl() {
	h.mu.Lock()
	c := h.control
	h.control = nil
	h.mu.Unlock()
	if c != nil {
		<-c.closed
	}
}

func (h *Host) controlPath() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.control == nil {
		return ""
	}
	return h.control.path
}

func (h *Host) handleReload(w http.ResponseWriter, r *http.Request) {
	// A stop cuts the reload short and waits for the handler to end.
	if !h.enterWork() {
		writeControl(w, http.StatusConflict, map[string]string{"error": errStopping.Error()})
		return
	}
	defer h.work.Done()
	ctx, cancel := h.bound(r.Context())
	defer cancel()
	var req ReloadRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxControlBody)).Decode(&req); err != nil && !errors.Is(err, io.EOF) {
		writeControl(w, http.StatusBadRequest, map[string]string{"error": "reload request: " + err.Error()})
		return
	}
	var reply ReloadReply
	var err error
	if len(req.Plugins) == 0 && h.reloads.load != nil {
		// As SIGHUP: the configuration read again first, then every
		// changed binary.
		reply.Config = "reloaded"
		if cerr := h.Reload(ctx); cerr != nil {
			reply.Config, reply.ConfigError = "", cerr.Error()
		}
	}
	reply.Results, err = h.ReplacePlugins(ctx, req)
	var unknown *UnknownPluginError
	switch {
	case ctx.Err() != nil:
		writeControl(w, http.StatusConflict, map[string]string{"error": fmt.Sprintf("reload cut short: %v", context.Cause(ctx))})
	case errors.As(err, &unknown):
		writeControl(w, http.StatusNotFound, map[string]string{"error": err.Error()})
	case errors.Is(err, errStopping):
		writeControl(w, http.StatusConflict, map[string]string{"error": err.Error()})
	case err != nil:
		writeControl(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
	default:
		writeControl(w, http.StatusOK, reply)
	}
}

// ReloadReply is what a reload through the control socket did.
type ReloadReply struct {
	// Config is "reloaded" when a reload without names read the host's
	// --config file again and applied it; ConfigError says why it did not
	// (the host keeps its running configuration). Both are empty for a host
	// without --config, and for a reload of named plugins.
	Config      string `json:"config,omitempty"`
	ConfigError string `json:"config_error,omitempty"`
	// Results has one entry per plugin.
	Results []ReloadResult `json:"results"`
}

func writeControl(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// controlTimeout bounds a reload asked through the control socket: starting
// and configuring new processes takes seconds at most.
const controlTimeout = 2 * time.Minute

// RequestReload asks the host whose status file is statusFile to reload, and
// returns what it did. The errors name the cause: no host running, a host
// without a control socket, a plugin it neither serves nor finds.
func RequestReload(ctx context.Context, statusFile string, req ReloadRequest) (ReloadReply, error) {
	var none ReloadReply
	st, err := ReadStatus(statusFile)
	if err != nil {
		return none, err
	}
	switch {
	case st.HostState != "running":
		return none, fmt.Errorf("no host is running: %s says the host (pid %d) is %s", statusFile, st.HostPid, st.HostState)
	case st.Control == "":
		return none, fmt.Errorf("the host (pid %d) has no control socket (see its log)", st.HostPid)
	}
	if err := checkControl(st.Control); err != nil {
		return none, err
	}
	body, err := json.Marshal(req)
	if err != nil {
		return none, err
	}
	ctx, cancel := context.WithTimeout(ctx, controlTimeout)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", st.Control)
		},
	}}
	defer client.CloseIdleConnections()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://sockplay/v1/reload", bytes.NewReader(body))
	if err != nil {
		return none, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(hreq)
	if err != nil {
		return none, fmt.Errorf("control socket %s: %w", st.Control, err)
	}
	defer resp.Body.Close()
	var out struct {
		ReloadReply
		Error string `json:"error"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out); err != nil {
		return none, fmt.Errorf("control socket %s: %s: %w", st.Control, resp.Status, err)
	}
	if resp.StatusCode != http.StatusOK {
		if out.Error == "" {
			out.Error = resp.Status
		}
		return none, errors.New(out.Error)
	}
	return out.ReloadReply, nil
}
