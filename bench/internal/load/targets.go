package load

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Target names.
const (
	Plugin    = "plugin"    // the host with the echo (and udpecho) plugin
	Python    = "python"    // a host with the Python examples pyecho (and pyudpecho)
	Rules     = "rules"     // a host with echo and access rules (RulesArgs)
	Direct    = "direct"    // a plain Go echo server in its own process
	InProc    = "inproc"    // the same server inside the bench process
	Xinetd    = "xinetd"    // xinetd running /bin/cat
	TCPServer = "tcpserver" // ucspi-tcp's tcpserver running cat
)

// Target is one running echo server the bench measures.
type Target struct {
	Name    string
	TCP     string // address of the TCP echo, "" if none
	UDP     string // address of the UDP echo, "" if none
	Pid     int    // the process that serves the connections (the plugin's, for the host)
	HostPid int    // the host's pid, for the plugin target
	UDPPid  int    // the process that serves UDP, when not Pid
	Classic bool   // a super-server: only Classic scenarios run against it
	// CPUPids are the processes whose CPU time is the server's (none for
	// the in-process server: its CPU is the load generator's too).
	CPUPids []int
	stop    func() error
}

// Stop stops the target and waits for its processes.
func (t *Target) Stop() error {
	if t.stop == nil {
		return nil
	}
	err := t.stop()
	t.stop = nil
	return err
}

// startTimeout bounds how long any target may take to start serving.
const startTimeout = 30 * time.Second

// HostPlugins names the target a host is measured as and the echo plugins
// it serves.
type HostPlugins struct {
	Target, TCP, UDP string
}

// The plugins of the two host targets: the Go ones, and the Python examples
// (examples/python, which make build installs as sockplay-pyNAME).
var (
	GoPlugins     = HostPlugins{Target: Plugin, TCP: "echo", UDP: "udpecho"}
	PythonPlugins = HostPlugins{Target: Python, TCP: "pyecho", UDP: "pyudpecho"}
	RulesPlugins  = HostPlugins{Target: Rules, TCP: "echo"}
)

// StartHost runs `sockplay serve` from binDir with the echo plugin, and the
// udpecho plugin too when udp is set, on ephemeral loopback ports.
// env is added to the host's environment (its plugins inherit it), and extra
// to its arguments.
func StartHost(ctx context.Context, binDir string, udp bool, env, extra []string) (*Target, error) {
	return StartHostOf(ctx, GoPlugins, binDir, udp, env, extra)
}

// StartHostOf is StartHost with the plugins of hp; the UDP one is set to a
// plain echo (prefix=).
func StartHostOf(ctx context.Context, hp HostPlugins, binDir string, udp bool, env, extra []string) (*Target, error) {
	// No status file: a benchmark's host neither writes the user's nor finds
	// it locked by a host the user runs.
	args := []string{"serve", "--plugin-dir", binDir, "--log-level", "warn", "--drain-timeout", "2s",
		"--status-file", "", "--listen", hp.TCP + "=127.0.0.1:0", "--admin", "127.0.0.1:0"}
	args = append(args, extra...)
	if udp {
		args = append(args, "--enable", hp.TCP+","+hp.UDP, "--listen", hp.UDP+"=127.0.0.1:0", "--set", hp.UDP+".prefix=")
		if hp.UDP == GoPlugins.UDP {
			// The Go udpecho's reflection guards would drop a benchmark's
			// datagrams from one source: the rate limit, and (for a fixed
			// payload) the loop guard. Loopback only.
			args = append(args, "--set", "udpecho.rate=0", "--set", "udpecho.loop-guard=false")
		}
	} else {
		args = append(args, "--enable", hp.TCP)
	}
	cmd := exec.Command(filepath.Join(binDir, "sockplay"), args...)
	cmd.Env = append(os.Environ(), env...)
	lines, err := startLines(cmd, "sockplay: serving")
	if err != nil {
		return nil, fmt.Errorf("sockplay %s: %w", strings.Join(args, " "), err)
	}
	t := &Target{Name: hp.Target, HostPid: cmd.Process.Pid, stop: terminate(cmd)}
	for _, l := range lines {
		// echo      1.0.0    tcp 127.0.0.1:40123       pid 4242
		f := strings.Fields(l)
		if len(f) != 6 || f[4] != "pid" {
			continue
		}
		pid, _ := strconv.Atoi(f[5])
		switch f[0] {
		case hp.TCP:
			t.TCP, t.Pid = f[3], pid
		case hp.UDP:
			t.UDP, t.UDPPid = f[3], pid
		}
	}
	t.CPUPids = []int{t.HostPid, t.Pid}
	if t.UDPPid != 0 {
		t.CPUPids = append(t.CPUPids, t.UDPPid)
	}
	if t.TCP == "" || t.Pid == 0 {
		t.Stop()
		return nil, fmt.Errorf("sockplay printed no %s line: %q", hp.TCP, lines)
	}
	return t, nil
}

// StartDirect runs the direct server as its own process: argv is a command
// that runs ServeDirect (the bench binary's `direct-server`).
func StartDirect(ctx context.Context, argv, env []string) (*Target, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	// The server exits when its stdin closes: when the bench goes, so does it.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	lines, err := startLines(cmd, "serving")
	if err != nil {
		stdin.Close()
		return nil, fmt.Errorf("direct server %s: %w", strings.Join(argv, " "), err)
	}
	t := &Target{Name: Direct, Pid: cmd.Process.Pid, CPUPids: []int{cmd.Process.Pid}}
	term := terminate(cmd)
	t.stop = func() error { stdin.Close(); return term() }
	for _, l := range lines {
		if f := strings.Fields(l); len(f) == 2 {
			switch f[0] {
			case "tcp":
				t.TCP = f[1]
			case "udp":
				t.UDP = f[1]
			}
		}
	}
	if t.TCP == "" {
		t.Stop()
		return nil, fmt.Errorf("direct server printed no address: %q", lines)
	}
	return t, nil
}

// StartInProc runs the direct server inside this process, sharing the load
// generator's scheduler.
func StartInProc() (*Target, error) {
	d, err := ListenDirect()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.Serve(ctx) }()
	return &Target{Name: InProc, TCP: d.TCPAddr(), UDP: d.UDPAddr(), Pid: os.Getpid(),
		stop: func() error { cancel(); <-done; return nil }}, nil
}

// StartXinetd runs xinetd in the foreground with a private configuration: one
// unlisted service on a free loopback port that runs /bin/cat per connection,
// unthrottled.
func StartXinetd(ctx context.Context, dir string) (*Target, error) {
	bin, err := exec.LookPath("xinetd")
	if err != nil {
		return nil, err
	}
	cat, err := exec.LookPath("cat")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	user := "nobody"
	if os.Getuid() != 0 {
		user = strconv.Itoa(os.Getuid())
	}
	conf := filepath.Join(dir, "xinetd.conf")
	text := fmt.Sprintf(`defaults
{
	log_type       = FILE %s
	log_on_success =
	log_on_failure =
}
service sockplay-bench-echo
{
	type        = UNLISTED
	socket_type = stream
	protocol    = tcp
	wait        = no
	user        = %s
	server      = %s
	port        = %d
	bind        = 127.0.0.1
	instances   = UNLIMITED
	per_source  = UNLIMITED
	cps         = 1000000 1
}
`, filepath.Join(dir, "xinetd.log"), user, cat, port)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-dontfork", "-f", conf, "-pidfile", filepath.Join(dir, "xinetd.pid"))
	return startClassic(ctx, Xinetd, cmd, port)
}

// StartTCPServer runs ucspi-tcp's tcpserver with cat on a free loopback port.
func StartTCPServer(ctx context.Context) (*Target, error) {
	bin, err := exec.LookPath("tcpserver")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-c", "1000", "-b", "1024", "-H", "-R", "-l", "0", "127.0.0.1", strconv.Itoa(port), "cat")
	return startClassic(ctx, TCPServer, cmd, port)
}

func startClassic(ctx context.Context, name string, cmd *exec.Cmd, port int) (*Target, error) {
	var stderr syncBuffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	t := &Target{Name: name, Pid: cmd.Process.Pid, Classic: true, CPUPids: []int{cmd.Process.Pid}, stop: terminate(cmd)}
	t.TCP = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(startTimeout)
	for {
		c, err := net.DialTimeout("tcp", t.TCP, time.Second)
		if err == nil {
			c.Close()
			return t, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Stop()
			return nil, fmt.Errorf("%s did not listen on %s: %v %s", name, t.TCP, err, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startLines starts cmd (in its own process group) and returns its stdout
// lines up to and including the first that starts with ready.
func startLines(cmd *exec.Cmd, ready string) ([]string, error) {
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr syncBuffer
	if cmd.Stderr != nil { // the caller keeps the log, and sees it too
		cmd.Stderr = io.MultiWriter(cmd.Stderr, &stderr)
	} else {
		cmd.Stderr = &stderr
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	type result struct {
		lines []string
		err   error
	}
	got := make(chan result, 1)
	go func() {
		var lines []string
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines = append(lines, sc.Text())
			if strings.HasPrefix(sc.Text(), ready) {
				got <- result{lines, nil}
				// Keep draining: the process must never block on stdout.
				_, _ = io.Copy(io.Discard, stdout)
				return
			}
		}
		got <- result{lines, fmt.Errorf("exited before %q: %s", ready, stderr.String())}
	}()
	select {
	case r := <-got:
		if r.err != nil {
			_ = terminate(cmd)()
		}
		return r.lines, r.err
	case <-time.After(startTimeout):
		_ = terminate(cmd)()
		return nil, fmt.Errorf("not serving after %s: %s", startTimeout, stderr.String())
	}
}

// terminate returns a function that stops cmd: SIGTERM, then after 10 s
// SIGKILL to its whole process group, and waits.
func terminate(cmd *exec.Cmd) func() error {
	var once sync.Once
	var err error
	return func() error {
		once.Do(func() {
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				err = errors.Join(errors.New("did not stop on SIGTERM in 10 s"), <-done)
			}
			// Whatever the process group still holds (cat children of a
			// super-server) goes too.
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		})
		return err
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.b.Len() > 64<<10 {
		return len(p), nil
	}
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
