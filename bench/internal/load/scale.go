package load

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The scaling measurements run only when named (--scenario): how the costs
// grow with the number of connections, and with the number of plugins.
const (
	ScaleConnsScenario   = "scale-conns"
	ScalePluginsScenario = "scale-plugins"
)

// DefaultScaleConns and DefaultScalePlugins are the sizes measured.
var (
	DefaultScaleConns   = []int{1, 10, 100, 1000, 10000}
	DefaultScalePlugins = []int{1, 5, 10, 20}
)

// ConnsScale is one size of the connections measurement on one target:
// medians over the rounds.
type ConnsScale struct {
	Conns  int    `json:"conns"`
	Target string `json:"target"`
	// ReqS is round trips per second over all connections, P99Us their
	// 99th percentile; CPUUs the serving processes' CPU per round trip
	// (host and plugin), HostCPUUs the host's share.
	ReqS      float64 `json:"req_s"`
	P99Us     float64 `json:"p99_us"`
	CPUUs     float64 `json:"cpu_us"`
	HostCPUUs float64 `json:"host_cpu_us"`
	// ServerKiB and HostKiB are resident memory with the connections open
	// (the server: the plugin, or the direct server).
	ServerKiB int64 `json:"server_kib"`
	HostKiB   int64 `json:"host_kib,omitempty"`
	// IdleServerKiB is the server's before the connections.
	IdleServerKiB int64 `json:"idle_server_kib"`
}

// measureConnsScale runs, for each size, a ping-pong over that many
// connections at once against the plugin and the direct server, the two in
// turn each round.
func measureConnsScale(ctx context.Context, cfg Config, limit int, progress io.Writer) ([]ConnsScale, error) {
	host, err := StartHost(ctx, cfg.BinDir, false, cfg.HostEnv, cfg.HostArgs)
	if err != nil {
		return nil, err
	}
	defer host.Stop()
	direct, err := StartDirect(ctx, cfg.DirectCmd, cfg.DirectEnv)
	if err != nil {
		return nil, err
	}
	defer direct.Stop()
	var out []ConnsScale
	for _, n := range cfg.ScaleConns {
		samples := map[string][]map[string]float64{}
		for r := range cfg.Rounds {
			order := []*Target{host, direct}
			if r%2 == 1 {
				order = []*Target{direct, host}
			}
			for _, t := range order {
				conns := n
				if t == direct && limit > 0 {
					// io.Copy holds a splice pipe (two descriptors) per
					// connection.
					conns = min(n, (limit-256)/3)
				}
				got, err := scaleOnce(ctx, t, conns, cfg.Params)
				if err != nil {
					return out, fmt.Errorf("%d connections, %s: %w", n, t.Name, err)
				}
				samples[t.Name] = append(samples[t.Name], got)
				fmt.Fprintf(progress, "bench: scale-conns %d/%d %6d connections %-7s %.0f round trips/s, %.1f µs CPU each\n",
					r+1, cfg.Rounds, conns, t.Name, got["req_s"], got[CPUKey])
			}
		}
		for _, t := range []*Target{host, direct} {
			s := samples[t.Name]
			med := func(k string) float64 {
				xs := make([]float64, len(s))
				for i := range s {
					xs[i] = s[i][k]
				}
				return Median(xs)
			}
			out = append(out, ConnsScale{Conns: int(med("conns")), Target: t.Name, ReqS: med("req_s"), P99Us: med("p99_us"),
				CPUUs: med(CPUKey), HostCPUUs: med(HostCPUKey), ServerKiB: int64(med("server_kib")),
				HostKiB: int64(med("host_kib")), IdleServerKiB: int64(med("idle_server_kib"))})
		}
	}
	return out, nil
}

// scaleOnce opens n connections to t, reads memory once all are served, runs
// the ping-pong and closes them.
func scaleOnce(ctx context.Context, t *Target, n int, p Params) (map[string]float64, error) {
	got := map[string]float64{"conns": float64(n)}
	idle, _ := RSS(t.Pid)
	got["idle_server_kib"] = float64(idle)
	conns, err := dialMany(ctx, t.TCP, n)
	defer closeAll(conns)
	if err != nil {
		return nil, err
	}
	var cpu0, host0 time.Duration
	res, err := pingMany(ctx, conns, p, func() {
		rss, _ := RSS(t.Pid)
		got["server_kib"] = float64(rss)
		if t.HostPid != 0 {
			h, _ := RSS(t.HostPid)
			got["host_kib"] = float64(h)
		}
		cpu0, host0 = cpuOf(t.CPUPids), cpuOf([]int{t.HostPid})
	})
	if err != nil {
		return nil, err
	}
	ops := res[opsKey]
	for k, v := range res {
		got[k] = v
	}
	if ops > 0 {
		got[CPUKey] = micros(cpuOf(t.CPUPids)-cpu0) / ops
		if t.HostPid != 0 {
			got[HostCPUKey] = micros(cpuOf([]int{t.HostPid})-host0) / ops
		}
	}
	return got, nil
}

// PluginsScale is one size of the plugins measurement: a host serving that
// many copies of echo, medians over the rounds.
type PluginsScale struct {
	Plugins int `json:"plugins"`
	// StartMs is from exec of `sockplay serve` to its ready line.
	StartMs float64 `json:"start_ms"`
	// HostKiB is the host's resident memory once ready, and PluginKiB and
	// PluginAnonKiB the mean of the plugins' (anonymous: their own, not the
	// binary's pages shared by every copy of one binary).
	HostKiB       int64 `json:"host_kib"`
	PluginKiB     int64 `json:"plugin_kib"`
	PluginAnonKiB int64 `json:"plugin_anon_kib"`
	// TotalKiB is the host's and every plugin's resident memory summed;
	// TotalPSSKiB the same in proportional set size (shared pages divided
	// among those mapping them), what the machine really spends.
	TotalKiB    int64 `json:"total_kib"`
	TotalPSSKiB int64 `json:"total_pss_kib"`
}

// CopyName is the name of the i-th copy of echo (1-based) in the plugins
// measurement's plugin directory: echo01, echo02, ...; the binary is
// sockplay-CopyName(i), built with -ldflags "-X main.name=CopyName(i)".
func CopyName(i int) string { return fmt.Sprintf("echo%02d", i) }

// measurePluginsScale starts, for each size n, a host serving the copies
// echo01..n from cfg.PluginCopies (and the host binary from cfg.BinDir),
// Rounds times, and measures its start and memory.
func measurePluginsScale(ctx context.Context, cfg Config, progress io.Writer) ([]PluginsScale, error) {
	if cfg.PluginCopies == "" {
		return nil, fmt.Errorf("no --plugin-copies directory (scripts/bench-scale.sh builds one)")
	}
	var out []PluginsScale
	for _, n := range cfg.ScalePlugins {
		var starts, hosts, plugins, anons, totals, psss []float64
		for r := range cfg.Rounds {
			m, err := pluginsOnce(ctx, cfg, n)
			if err != nil {
				return out, fmt.Errorf("%d plugins, round %d: %w", n, r+1, err)
			}
			starts, hosts = append(starts, m.StartMs), append(hosts, float64(m.HostKiB))
			plugins, anons = append(plugins, float64(m.PluginKiB)), append(anons, float64(m.PluginAnonKiB))
			totals, psss = append(totals, float64(m.TotalKiB)), append(psss, float64(m.TotalPSSKiB))
			fmt.Fprintf(progress, "bench: scale-plugins %d/%d %2d plugins: ready in %.0f ms, host %d KiB, %d KiB a plugin\n",
				r+1, cfg.Rounds, n, m.StartMs, m.HostKiB, m.PluginKiB)
		}
		out = append(out, PluginsScale{Plugins: n, StartMs: Median(starts), HostKiB: int64(Median(hosts)),
			PluginKiB: int64(Median(plugins)), PluginAnonKiB: int64(Median(anons)),
			TotalKiB: int64(Median(totals)), TotalPSSKiB: int64(Median(psss))})
	}
	return out, nil
}

func pluginsOnce(ctx context.Context, cfg Config, n int) (PluginsScale, error) {
	m := PluginsScale{Plugins: n}
	names := make([]string, n)
	args := []string{"serve", "--plugin-dir", cfg.PluginCopies, "--log-level", "warn", "--drain-timeout", "2s",
		"--status-file", "", "--admin", "127.0.0.1:0"}
	for i := range n {
		names[i] = CopyName(i + 1)
		args = append(args, "--listen", names[i]+"=127.0.0.1:0")
	}
	args = append(args, "--enable", strings.Join(names, ","))
	args = append(args, cfg.HostArgs...)
	cmd := exec.Command(filepath.Join(cfg.BinDir, "sockplay"), args...)
	cmd.Env = append(os.Environ(), cfg.HostEnv...)
	start := time.Now()
	lines, err := startLines(cmd, "sockplay: serving")
	if err != nil {
		return m, err
	}
	m.StartMs = millis(time.Since(start))
	defer terminate(cmd)()
	pids, addrs := map[string]int{}, map[string]string{}
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) == 6 && f[4] == "pid" {
			pids[f[0]], _ = strconv.Atoi(f[5])
			addrs[f[0]] = f[3]
		}
	}
	// Every copy serves, and the processes settle before memory is read.
	msg := message(64)
	for _, name := range names {
		if pids[name] == 0 {
			return m, fmt.Errorf("no start line for %s: %q", name, lines)
		}
		c, err := dial(ctx, addrs[name])
		if err != nil {
			return m, fmt.Errorf("%s: %w", name, err)
		}
		_ = c.SetDeadline(time.Now().Add(slack))
		err = roundTrip(c, msg, make([]byte, len(msg)))
		c.Close()
		if err != nil {
			return m, fmt.Errorf("%s: %w", name, err)
		}
	}
	time.Sleep(time.Second)
	host := cmd.Process.Pid
	m.HostKiB, _ = RSS(host)
	hostPSS, _ := procField(fmt.Sprintf("/proc/%d/smaps_rollup", host), "Pss:")
	m.TotalKiB, m.TotalPSSKiB = m.HostKiB, hostPSS
	var sum, anon int64
	for _, name := range names {
		rss, _ := RSS(pids[name])
		a, _ := procField(fmt.Sprintf("/proc/%d/smaps_rollup", pids[name]), "Anonymous:")
		pss, _ := procField(fmt.Sprintf("/proc/%d/smaps_rollup", pids[name]), "Pss:")
		sum, anon = sum+rss, anon+a
		m.TotalKiB += rss
		m.TotalPSSKiB += pss
	}
	m.PluginKiB, m.PluginAnonKiB = sum/int64(n), anon/int64(n)
	return m, nil
}

// validSizes checks a list of sizes.
func validSizes(what string, xs []int, most int) error {
	for _, x := range xs {
		if x < 1 || x > most {
			return fmt.Errorf("%s %d: want 1 to %d", what, x, most)
		}
	}
	if !slices.IsSorted(xs) {
		return fmt.Errorf("%s %v: want them in increasing order", what, xs)
	}
	return nil
}
