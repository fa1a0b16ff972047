package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Config is one bench run.
type Config struct {
	// BinDir holds sockplay and sockplay-echo (and sockplay-udpecho).
	BinDir string
	// Rounds is how many times every measurement runs against every target;
	// the report gives medians over rounds.
	Rounds int
	Params Params
	// Scenarios names the scenarios to run (Scenarios' names); empty: all.
	Scenarios []string
	// Classic adds xinetd and tcpserver when they are installed.
	Classic bool
	// InProc adds the direct server running inside the bench process.
	InProc bool
	// UDP runs the UDP scenarios when BinDir has sockplay-udpecho.
	UDP bool
	// Python adds a second host serving the Python examples pyecho and
	// pyudpecho, when BinDir has them (target "python").
	Python bool
	// Rules adds a third host serving echo with access rules (target
	// "rules"): an allow list, a per-source limit and a per-source rate,
	// none of which refuses the bench's clients (RulesArgs).
	Rules bool
	// MemoryConns is how many idle connections the memory check opens (0:
	// no memory check).
	MemoryConns int
	// Restart shapes the restart measurement (scenario "restart"), which
	// runs after the rounds against a host of its own; Kills 0 skips it.
	Restart RestartParams
	// ScaleConns and ScalePlugins are the sizes of the scaling
	// measurements, which run only when named in Scenarios
	// (ScaleConnsScenario, ScalePluginsScenario). PluginCopies is the
	// plugin directory with the copies of echo that ScalePlugins serves
	// (CopyName).
	ScaleConns   []int
	ScalePlugins []int
	PluginCopies string
	// DirectCmd runs ServeDirect in its own process; DirectEnv is added to
	// its environment.
	DirectCmd []string
	DirectEnv []string
	// HostEnv is added to the host's environment, and so its plugins'
	// (experiments: GOMAXPROCS, GODEBUG).
	HostEnv []string
	// HostArgs are added to `sockplay serve`'s arguments, such as
	// --handoff listener.
	HostArgs []string
	// Progress gets a line per measurement; nil discards them.
	Progress io.Writer
}

// DefaultConfig is `make bench`: 7 rounds of every scenario, the classic
// super-servers, 10,000 idle connections.
func DefaultConfig() Config {
	return Config{BinDir: "bin", Rounds: 7, Params: DefaultParams(), Classic: true, UDP: true, Python: true, Rules: true, MemoryConns: 10000,
		Restart: DefaultRestartParams(), ScaleConns: DefaultScaleConns, ScalePlugins: DefaultScalePlugins}
}

// RulesArgs are the rules target's: an allow list, a per-source limit and
// a per-source rate on echo that the bench's clients (all from 127.0.0.1, at
// most Params.Conns at once) stay within, with the plugin accepting on the
// shared listener (--handoff listener: the fast mode, where the SDK
// enforces them). --host-arg values come after these and override them,
// such as --host-arg=--handoff=conn to have the host enforce them.
var RulesArgs = []string{"--handoff", "listener", "--allow", "echo=127.0.0.0/8,::1",
	"--max-per-source", "echo=256", "--rate-per-source", "echo=1000000/s:100000"}

// Validate reports a Config that cannot run.
func (c Config) Validate() error {
	if c.Rounds < 1 || c.Rounds > 1000 {
		return fmt.Errorf("rounds %d: want 1 to 1000", c.Rounds)
	}
	if c.MemoryConns < 0 || c.MemoryConns > 1_000_000 {
		return fmt.Errorf("memory conns %d: want 0 to 1000000", c.MemoryConns)
	}
	if len(c.DirectCmd) == 0 {
		return errors.New("no direct-server command")
	}
	names := []string{}
	for _, s := range Scenarios() {
		names = append(names, s.Name)
	}
	names = append(names, RestartScenario, ScaleConnsScenario, ScalePluginsScenario)
	for _, s := range c.Scenarios {
		if !slices.Contains(names, s) {
			return fmt.Errorf("unknown scenario %q (have %s)", s, strings.Join(names, ", "))
		}
	}
	if err := c.Restart.Validate(); err != nil {
		return err
	}
	if err := validSizes("connections", c.ScaleConns, 100_000); err != nil {
		return err
	}
	if err := validSizes("plugins", c.ScalePlugins, 99); err != nil {
		return err
	}
	return c.Params.Validate()
}

// runs reports whether the scenario called name is to run.
func (c Config) runs(name string) bool {
	return len(c.Scenarios) == 0 || slices.Contains(c.Scenarios, name)
}

// Run starts the targets, measures every scenario against each of them for
// Rounds rounds, turn about (the order of targets rotates each round so that
// none always goes first), then checks memory, stops everything and returns
// the report. A measurement that fails is recorded in the report's Errors and
// the run goes on; Run returns an error only when it cannot start.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	progress := cfg.Progress
	if progress == nil {
		progress = io.Discard
	}
	rep := &Report{Started: time.Now().UTC(), Machine: machine(), Rounds: cfg.Rounds,
		Duration: cfg.Params.Duration.String(), Results: map[string]map[string]map[string][]float64{}}

	limit, err := RaiseFDLimit()
	if err != nil {
		rep.Notes = append(rep.Notes, "could not raise the descriptor limit: "+err.Error())
	}

	var scenarios []Scenario
	for _, s := range Scenarios() {
		if cfg.runs(s.Name) {
			scenarios = append(scenarios, s)
		}
	}
	if len(scenarios) > 0 { // and the memory check with them
		if err := runRounds(ctx, cfg, rep, scenarios, limit, progress); err != nil {
			return nil, err
		}
	}
	if cfg.runs(RestartScenario) && cfg.Restart.Kills > 0 {
		r, err := measureRestart(ctx, cfg, progress)
		if err != nil {
			rep.Errors = append(rep.Errors, "restart: "+err.Error())
		}
		rep.Restart = r
	}
	if slices.Contains(cfg.Scenarios, ScaleConnsScenario) {
		var err error
		if rep.ConnsScale, err = measureConnsScale(ctx, cfg, limit, progress); err != nil {
			rep.Errors = append(rep.Errors, "scale-conns: "+err.Error())
		}
	}
	if slices.Contains(cfg.Scenarios, ScalePluginsScenario) {
		var err error
		if rep.PluginsScale, err = measurePluginsScale(ctx, cfg, progress); err != nil {
			rep.Errors = append(rep.Errors, "scale-plugins: "+err.Error())
		}
	}
	rep.finish(scenarios)
	return rep, nil
}

// runRounds starts the targets, runs the rounds of scenarios against them,
// checks memory, and stops the targets.
func runRounds(ctx context.Context, cfg Config, rep *Report, all []Scenario, limit int, progress io.Writer) error {
	udp := false
	if cfg.UDP {
		if _, err := os.Stat(filepath.Join(cfg.BinDir, "sockplay-udpecho")); err == nil {
			udp = true
		} else {
			rep.Notes = append(rep.Notes, "UDP scenarios skipped: no sockplay-udpecho in "+cfg.BinDir)
		}
	}
	var targets []*Target
	defer func() {
		for _, t := range targets {
			if err := t.Stop(); err != nil {
				fmt.Fprintf(progress, "bench: stopping %s: %v\n", t.Name, err)
			}
		}
	}()
	host, err := StartHost(ctx, cfg.BinDir, udp, cfg.HostEnv, cfg.HostArgs)
	if err != nil {
		return err
	}
	targets = append(targets, host)
	direct, err := StartDirect(ctx, cfg.DirectCmd, cfg.DirectEnv)
	if err != nil {
		return err
	}
	targets = append(targets, direct)
	if cfg.Python {
		if _, err := os.Stat(filepath.Join(cfg.BinDir, "sockplay-"+PythonPlugins.TCP)); err != nil {
			rep.Notes = append(rep.Notes, "python skipped: no sockplay-pyecho in "+cfg.BinDir+" (make build installs it)")
		} else {
			_, err := os.Stat(filepath.Join(cfg.BinDir, "sockplay-"+PythonPlugins.UDP))
			t, err := StartHostOf(ctx, PythonPlugins, cfg.BinDir, udp && err == nil, cfg.HostEnv, cfg.HostArgs)
			if err != nil {
				return err
			}
			targets = append(targets, t)
		}
	}
	if cfg.Rules {
		t, err := StartHostOf(ctx, RulesPlugins, cfg.BinDir, false, cfg.HostEnv, append(slices.Clone(RulesArgs), cfg.HostArgs...))
		if err != nil {
			return err
		}
		targets = append(targets, t)
	}
	if cfg.InProc {
		t, err := StartInProc()
		if err != nil {
			return err
		}
		targets = append(targets, t)
	}
	if cfg.Classic {
		dir, err := os.MkdirTemp("", "sockplay-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		for _, start := range []struct {
			name string
			f    func() (*Target, error)
		}{
			{Xinetd, func() (*Target, error) { return StartXinetd(ctx, dir) }},
			{TCPServer, func() (*Target, error) { return StartTCPServer(ctx) }},
		} {
			t, err := start.f()
			var notFound *exec.Error
			switch {
			case errors.As(err, &notFound):
				rep.Notes = append(rep.Notes, fmt.Sprintf("%s skipped: not installed (scripts/bench.sh installs it)", start.name))
			case err != nil:
				rep.Notes = append(rep.Notes, fmt.Sprintf("%s skipped: %v", start.name, err))
			default:
				targets = append(targets, t)
			}
		}
	}
	for _, t := range targets {
		rep.Targets = append(rep.Targets, t.Name)
	}

	var scenarios []Scenario
	for _, s := range all {
		if !s.UDP || udp {
			scenarios = append(scenarios, s)
		}
	}
	for r := range cfg.Rounds {
		order := append(slices.Clone(targets[r%len(targets):]), targets[:r%len(targets)]...)
		for _, s := range scenarios {
			for _, t := range order {
				addr := t.TCP
				if s.UDP {
					addr = t.UDP
				}
				if addr == "" || (t.Classic && !s.Classic) {
					continue
				}
				if ctx.Err() != nil {
					return ctx.Err()
				}
				cpu0, host0 := cpuOf(t.CPUPids), cpuOf([]int{t.HostPid})
				got, err := s.Run(ctx, addr, cfg.Params)
				if ops := got[opsKey]; err == nil && ops > 0 && len(t.CPUPids) > 0 {
					got[CPUKey] = micros(cpuOf(t.CPUPids)-cpu0) / ops
					if t.HostPid != 0 {
						got[HostCPUKey] = micros(cpuOf([]int{t.HostPid})-host0) / ops
					}
				}
				if err != nil {
					msg := fmt.Sprintf("round %d, %s, %s: %v", r+1, s.Name, t.Name, err)
					rep.Errors = append(rep.Errors, msg)
					fmt.Fprintln(progress, "bench: "+msg)
					continue
				}
				rep.add(s, t.Name, got)
				fmt.Fprintf(progress, "bench: round %d/%d %-12s %-9s %s\n", r+1, cfg.Rounds, s.Name, t.Name, formatSample(s, got))
			}
		}
	}

	if cfg.MemoryConns > 0 {
		m, err := measureMemory(ctx, host, direct, cfg.MemoryConns, limit)
		if err != nil {
			rep.Errors = append(rep.Errors, "memory: "+err.Error())
		}
		rep.Memory = m
		if m != nil {
			fmt.Fprintf(progress, "bench: memory: host %d → %d KiB with %d idle connections\n", m.HostBeforeKiB, m.HostAfterKiB, m.Conns)
		}
	}
	return nil
}

// measureMemory opens conns idle connections to the plugin, reading the
// host's memory and descriptors at the peak, and then to the direct server.
// The direct server's io.Copy holds a splice pipe (two more descriptors) per
// connection, so it gets fewer connections when the descriptor limit is
// short.
func measureMemory(ctx context.Context, host, direct *Target, conns, limit int) (*Memory, error) {
	m := &Memory{Conns: conns}
	var err error
	if m.HostBeforeKiB, err = RSS(host.HostPid); err != nil {
		return nil, err
	}
	if m.HostFDsBefore, err = FDs(host.HostPid); err != nil {
		return nil, err
	}
	if limit > 0 && conns > limit-256 {
		return m, fmt.Errorf("%d connections need a descriptor limit above %d (have %d): ulimit -n", conns, conns+256, limit)
	}
	pm, err := idleConns(ctx, host, conns, func() {
		m.HostAfterKiB, _ = RSS(host.HostPid)
		m.HostFDsAfter, _ = FDs(host.HostPid)
	})
	if err != nil {
		return m, fmt.Errorf("plugin: %w", err)
	}
	m.Servers = append(m.Servers, pm)
	dconns := conns
	if limit > 0 {
		dconns = min(conns, (limit-256)/3)
	}
	dm, err := idleConns(ctx, direct, dconns, nil)
	if err != nil {
		return m, fmt.Errorf("direct: %w", err)
	}
	m.Servers = append(m.Servers, dm)
	return m, nil
}

func formatSample(s Scenario, got map[string]float64) string {
	var b strings.Builder
	for _, m := range s.Metrics {
		if v, ok := got[m.Key]; ok {
			fmt.Fprintf(&b, " %s=%.1f", m.Key, v)
		}
	}
	return strings.TrimSpace(b.String())
}

func machine() string {
	model := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	kernel := ""
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("%s/%s, %d CPUs (%s), Linux %s, %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), model, kernel, runtime.Version())
}
