// Package conformance is `sockplay check-plugin`: it runs a plugin binary, in
// any language, against the contract of sdk/protocol/SPEC.md and reports one
// line per check. It uses the host's own launcher (supervisor.Launch), so a
// plugin that passes is one the host can serve.
//
// The checks, in order (a check that cannot run because an earlier one
// failed is reported as skipped):
//
//	handshake    go-plugin's handshake (magic cookie, protocol version,
//	             AutoMTLS, gRPC) and the control service answers
//	describe     Describe: the name matches the binary's sockplay-NAME, a
//	             semantic version, a transport, a default address with a
//	             numeric port, valid and unique option names
//	configure    Configure with an option it did not declare is refused
//	             (INVALID_ARGUMENT naming it); Configure with the options given
//	             (--set, defaults otherwise) succeeds
//	health       Health says serving once configured
//	handoff      a TCP connection handed over by descriptor (kind 'C') is
//	             taken by the process and served: the client's line is
//	             answered, or the connection stays open, or ends in an
//	             orderly close, never a reset. UDP: the bound socket (kind
//	             'P') is taken, and a datagram sent to it is answered or not
//	             refused.
//	drain        Drain returns within its timeout, and the handed-over
//	             connection is closed by then
//	exit         the process exits within 1 s after the host's end of the
//	             handoff socket closes, without being signalled
//	cleanup      its socket directory is gone
package conformance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sockplay/sockplay/host/internal/catalog"
	"github.com/sockplay/sockplay/host/internal/listen"
	"github.com/sockplay/sockplay/host/internal/supervisor"
	"github.com/sockplay/sockplay/sdk/protocol"
)

// Options tune a check.
type Options struct {
	// Options are the plugin options for the good Configure.
	Options map[string]string
	// RunDir is where the per-process socket directory is made ("" for
	// os.TempDir()).
	RunDir string
	// Log receives the plugin's own log lines (nil discards them).
	Log hclog.Logger
	// Timeout bounds each step (default 10 s).
	Timeout time.Duration
}

// Result is one check's outcome.
type Result struct {
	Name   string
	Status string // "ok", "FAIL" or "skip"
	Detail string
}

// ExitWithin is how soon a plugin must exit after its host's end of the
// handoff socket closes.
const ExitWithin = time.Second

// Run checks the plugin binary at path and writes one line per check to out.
// It reports whether every check passed.
func Run(ctx context.Context, path string, o Options, out io.Writer) (bool, []Result) {
	c := &checker{path: path, o: o, out: out}
	if c.o.Timeout <= 0 {
		c.o.Timeout = 10 * time.Second
	}
	if c.o.Log == nil {
		c.o.Log = hclog.NewNullLogger()
	}
	c.run(ctx)
	return c.passed(), c.results
}

type checker struct {
	path    string
	o       Options
	out     io.Writer
	results []Result
	failed  bool

	entry  catalog.Entry
	runDir string
	proc   *supervisor.Process
	desc   *protocol.Description
	ln     supervisor.Listener
	stop   context.CancelFunc
	done   chan error
	conn   net.Conn // the handed-over connection's client end
}

func (c *checker) passed() bool {
	for _, r := range c.results {
		if r.Status != "ok" {
			return false
		}
	}
	return len(c.results) > 0
}

func (c *checker) report(name string, err error, okDetail string) bool {
	r := Result{Name: name, Status: "ok", Detail: okDetail}
	if err != nil {
		r.Status, r.Detail = "FAIL", err.Error()
		c.failed = true
	}
	c.results = append(c.results, r)
	fmt.Fprintf(c.out, "%-4s %-10s %s\n", r.Status, r.Name, r.Detail)
	return err == nil
}

func (c *checker) skip(names ...string) {
	for _, n := range names {
		c.results = append(c.results, Result{Name: n, Status: "skip", Detail: "an earlier check failed"})
		fmt.Fprintf(c.out, "%-4s %-10s %s\n", "skip", n, "an earlier check failed")
	}
}

func (c *checker) run(ctx context.Context) {
	all := []string{"handshake", "describe", "configure", "health", "handoff", "drain", "exit", "cleanup"}
	defer func() {
		if c.ln != nil {
			c.ln.Close()
		}
		if c.stop != nil {
			c.stop()
			<-c.done
		}
		if c.conn != nil {
			c.conn.Close()
		}
		if c.proc != nil {
			c.proc.Kill()
		}
		if c.runDir != "" {
			os.RemoveAll(c.runDir)
		}
	}()
	if !c.report("handshake", c.handshake(), "go-plugin gRPC with AutoMTLS, protocol version "+fmt.Sprint(protocol.Version)) {
		c.skip(all[1:]...)
		return
	}
	steps := []struct {
		name string
		f    func(context.Context) (string, error)
	}{
		{"describe", c.describe},
		{"configure", c.configure},
		{"health", c.health},
		{"handoff", c.handoff},
		{"drain", c.drain},
		{"exit", c.exit},
		{"cleanup", c.cleanup},
	}
	for i, s := range steps {
		detail, err := s.f(ctx)
		if !c.report(s.name, err, detail) && i < 3 {
			rest := []string{}
			for _, r := range steps[i+1:] {
				rest = append(rest, r.name)
			}
			c.skip(rest...)
			return
		}
	}
}

func (c *checker) handshake() error {
	abs, err := filepath.Abs(c.path)
	if err != nil {
		return err
	}
	base := filepath.Base(abs)
	name, ok := strings.CutPrefix(base, catalog.Prefix)
	if !ok || name == "" {
		return fmt.Errorf("%s: a plugin binary is named %sNAME", base, catalog.Prefix)
	}
	e, err := catalog.Lookup(name, []string{filepath.Dir(abs)}, "")
	if err != nil {
		return err
	}
	c.entry = e
	if c.runDir, _, err = supervisor.MakeRunDir(c.o.RunDir); err != nil {
		return err
	}
	c.proc, err = supervisor.Launch(context.Background(), supervisor.LaunchConfig{
		Entry: e, RunDir: c.runDir, LogLevel: hclog.Info, Logger: c.o.Log, StartTimeout: c.o.Timeout,
	})
	return err
}

func (c *checker) describe(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	d, err := c.proc.Control.Describe(ctx, &protocol.DescribeRequest{})
	if err != nil {
		return "", fmt.Errorf("Describe: %w", err)
	}
	c.desc = d
	var problems []string
	if d.GetName() != c.entry.Name {
		problems = append(problems, fmt.Sprintf("name %q, but the binary is %s%s", d.GetName(), catalog.Prefix, c.entry.Name))
	}
	if !protocol.ValidVersion(d.GetVersion()) {
		problems = append(problems, fmt.Sprintf("version %q is not a semantic version", d.GetVersion()))
	}
	if t := d.GetTransport(); t != protocol.Transport_TRANSPORT_TCP && t != protocol.Transport_TRANSPORT_UDP {
		problems = append(problems, fmt.Sprintf("transport %v: want TCP or UDP", t))
	}
	if _, port, err := net.SplitHostPort(d.GetDefaultAddr()); err != nil || port == "" {
		problems = append(problems, fmt.Sprintf("default address %q: want HOST:PORT", d.GetDefaultAddr()))
	}
	seen := map[string]bool{}
	for _, o := range d.GetOptions() {
		if o.GetName() == "" || seen[o.GetName()] {
			problems = append(problems, fmt.Sprintf("option %q is empty or repeated", o.GetName()))
		}
		seen[o.GetName()] = true
	}
	for k := range c.o.Options {
		if !seen[k] {
			problems = append(problems, fmt.Sprintf("--set %s: the plugin has no such option", k))
		}
	}
	if len(problems) > 0 {
		return "", errors.New(strings.Join(problems, "; "))
	}
	return fmt.Sprintf("%s %s, %s, default %s, %d options, features [%s]", d.GetName(), d.GetVersion(),
		supervisor.TransportName(d.GetTransport()), d.GetDefaultAddr(), len(d.GetOptions()), strings.Join(d.GetFeatures(), " ")), nil
}

// bogusOption is an option name no plugin declares.
const bogusOption = "sockplay-check-no-such-option"

func (c *checker) configure(ctx context.Context) (string, error) {
	var err error
	if supervisor.TransportName(c.desc.GetTransport()) == "udp" {
		c.ln, err = listen.ListenUDP("127.0.0.1:0", 0, 0)
	} else {
		c.ln, err = listen.ListenTCP("127.0.0.1:0", 64)
	}
	if err != nil {
		return "", err
	}
	addr := c.ln.Addr().String()
	cctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	_, err = c.proc.Control.Configure(cctx, &protocol.ConfigureRequest{Options: map[string]string{bogusOption: "1"}, ListenAddr: addr})
	switch st, _ := status.FromError(err); {
	case err == nil:
		return "", fmt.Errorf("Configure with an undeclared option %q succeeded; it must be refused", bogusOption)
	case st.Code() != codes.InvalidArgument:
		return "", fmt.Errorf("Configure with an undeclared option: %s; want INVALID_ARGUMENT", st.Code())
	case !strings.Contains(st.Message(), bogusOption):
		return "", fmt.Errorf("Configure with an undeclared option: the message %q does not name it", st.Message())
	}
	if err := c.proc.Configure(ctx, c.o.Options, addr, nil); err != nil {
		return "", fmt.Errorf("Configure with the options given: %v", err)
	}
	return "an undeclared option refused; configured on " + addr, nil
}

func (c *checker) health(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	h, err := c.proc.Control.Health(ctx, &protocol.HealthRequest{})
	if err != nil {
		return "", fmt.Errorf("Health: %w", err)
	}
	if !h.GetServing() || h.GetDraining() {
		return "", fmt.Errorf("Health after Configure: serving %v, draining %v; want serving", h.GetServing(), h.GetDraining())
	}
	return "serving", nil
}

func (c *checker) handoff(ctx context.Context) (string, error) {
	sctx, stop := context.WithCancel(ctx)
	c.stop, c.done = stop, make(chan error, 1)
	go func() { c.done <- c.ln.Serve(sctx, c.proc) }()
	if supervisor.TransportName(c.desc.GetTransport()) == "udp" {
		return c.handoffUDP()
	}
	conn, err := net.DialTimeout("tcp", c.ln.Addr().String(), c.o.Timeout)
	if err != nil {
		return "", err
	}
	c.conn = conn
	if err := c.waitHeld(conn.LocalAddr()); err != nil {
		return "", err
	}
	// Speak: a line protocol answers; a greeting protocol has already
	// spoken; a silent one keeps the connection open.
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	_, _ = conn.Write([]byte("hello\n"))
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	var ne net.Error
	switch {
	case n > 0:
		return fmt.Sprintf("taken by pid %d; it answered %d bytes", c.proc.Pid, n), nil
	case errors.Is(err, syscall.ECONNRESET):
		return "", errors.New("the connection was reset: close it in order (half-close, drain) instead")
	case errors.Is(err, io.EOF):
		return fmt.Sprintf("taken by pid %d; it closed the connection in order", c.proc.Pid), nil
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Sprintf("taken by pid %d; it keeps the connection open and silent", c.proc.Pid), nil
	}
	return "", fmt.Errorf("reading the handed-over connection: %v", err)
}

func (c *checker) handoffUDP() (string, error) {
	if err := c.waitHeld(c.ln.Addr()); err != nil {
		return "", err
	}
	conn, err := net.Dial("udp", c.ln.Addr().String())
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	_, _ = conn.Write([]byte("hello"))
	buf := make([]byte, 65536)
	n, err := conn.Read(buf)
	var ne net.Error
	switch {
	case err == nil:
		return fmt.Sprintf("the socket is held by pid %d; a datagram was answered with %d bytes", c.proc.Pid, n), nil
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Sprintf("the socket is held by pid %d; a datagram got no answer (allowed)", c.proc.Pid), nil
	}
	return "", fmt.Errorf("a datagram to the handed-over socket: %v", err)
}

// waitHeld waits until the process holds a socket bound to (or, for a TCP
// connection, connected from) addr: proof that it took the descriptor.
func (c *checker) waitHeld(addr net.Addr) error {
	deadline := time.Now().Add(c.o.Timeout)
	for {
		ok, err := holdsSocket(c.proc.Pid, addr)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("process %d does not hold the handed-over socket after %s", c.proc.Pid, c.o.Timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (c *checker) drain(ctx context.Context) (string, error) {
	const timeout = 2 * time.Second
	start := time.Now()
	forced, err := c.proc.Drain(ctx, timeout)
	took := time.Since(start)
	if err != nil {
		return "", fmt.Errorf("Drain: %v", err)
	}
	if took > timeout+time.Second {
		return "", fmt.Errorf("Drain with a %s timeout took %s", timeout, took.Round(time.Millisecond))
	}
	if c.conn != nil {
		_ = c.conn.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := io.Copy(io.Discard, c.conn); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return "", errors.New("the handed-over connection is still open after Drain returned")
			}
		}
	}
	return fmt.Sprintf("returned in %s, %d connections closed by force", took.Round(time.Millisecond), forced), nil
}

func (c *checker) exit(context.Context) (string, error) {
	c.stop()
	<-c.done
	c.stop = nil
	start := time.Now()
	if err := c.proc.CloseHandoff(); err != nil {
		return "", err
	}
	for !c.proc.Gone() {
		if time.Since(start) > ExitWithin {
			return "", fmt.Errorf("still running %s after its host's end of the handoff socket closed", ExitWithin)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Sprintf("exited %s after the host's end closed", time.Since(start).Round(time.Millisecond)), nil
}

func (c *checker) cleanup(context.Context) (string, error) {
	dir := c.proc.SocketDir()
	deadline := time.Now().Add(time.Second)
	for {
		_, err := os.Stat(dir)
		if errors.Is(err, os.ErrNotExist) {
			return dir + " removed", nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("its socket directory %s is still there", dir)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
