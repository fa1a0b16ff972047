package load

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// directEnv makes the test binary the direct-server process.
const directEnv = "SOCKPLAY_BENCH_DIRECT_SERVER"

func TestMain(m *testing.M) {
	if os.Getenv(directEnv) == "1" {
		if err := ServeDirect(context.Background(), os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutine leak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func TestPercentile(t *testing.T) {
	ms := func(xs ...int) []time.Duration {
		out := make([]time.Duration, len(xs))
		for i, x := range xs {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	for _, tc := range []struct {
		name string
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{"none", nil, 50, 0},
		{"one", ms(7), 99, 7 * time.Millisecond},
		{"p50 of 4 is the 2nd", ms(4, 1, 3, 2), 50, 2 * time.Millisecond},
		{"p99 of 100 is the 99th", ms(seq(100)...), 99, 99 * time.Millisecond},
		{"p100 is the max", ms(5, 9, 1), 100, 9 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Percentile(tc.in, tc.p); got != tc.want {
				t.Errorf("Percentile(%v, %v) = %v, want %v", tc.in, tc.p, got, tc.want)
			}
		})
	}
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = n - i
	}
	return out
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2.5}} {
		in := append([]float64(nil), tc.in...)
		if got := Median(tc.in); got != tc.want {
			t.Errorf("Median(%v) = %v, want %v", tc.in, got, tc.want)
		}
		if fmt.Sprint(in) != fmt.Sprint(tc.in) {
			t.Errorf("Median changed its input: %v, was %v", tc.in, in)
		}
	}
}

func TestReportChecks(t *testing.T) {
	r := &Report{Results: map[string]map[string]map[string][]float64{}}
	s := Scenarios()
	byName := func(n string) Scenario {
		for _, x := range s {
			if x.Name == n {
				return x
			}
		}
		t.Fatalf("no scenario %s", n)
		return Scenario{}
	}
	r.add(byName("pingpong"), Plugin, map[string]float64{"p50_us": 30, "p99_us": 90})
	r.add(byName("pingpong"), Direct, map[string]float64{"p50_us": 25, "p99_us": 80})
	r.add(byName("connrate"), Plugin, map[string]float64{"conn_s": 8000})
	r.add(byName("connrate"), Plugin, map[string]float64{"conn_s": 10000})
	r.add(byName("connrate"), Plugin, map[string]float64{"conn_s": 9000})
	r.add(byName("connrate"), Direct, map[string]float64{"conn_s": 10000})
	r.add(byName("connrate"), Xinetd, map[string]float64{"conn_s": 2000})
	r.Memory = &Memory{Conns: 10, HostAfterKiB: 70 << 10}
	r.finish(s)
	want := map[string]bool{
		"ping-pong p50":                    true,  // +5 µs
		"connections/s":                    true,  // 0.9
		"connections/s vs xinetd":          false, // 4.5
		"host memory, 10 idle connections": false,
	}
	if len(r.Checks) != len(want) {
		t.Fatalf("checks %+v, want %d", r.Checks, len(want))
	}
	for _, c := range r.Checks {
		if met, ok := want[c.Name]; !ok || met != c.Met {
			t.Errorf("check %+v: want met=%v (known %v)", c, met, ok)
		}
	}
	if row := r.Row("connrate", "conn_s"); row == nil || row.Median[Plugin] != 9000 || row.Ratio != 0.9 {
		t.Errorf("connrate row %+v: want plugin median 9000, ratio 0.9", row)
	}
	var text bytes.Buffer
	if err := r.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "MISSED") || !strings.Contains(text.String(), "0.90") {
		t.Errorf("text report lacks the missed check or the ratio:\n%s", text.String())
	}
}

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// bin builds the host and the echo (and udpecho) plugins once.
func bin(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			buildErr = err
			return
		}
		root := filepath.Dir(strings.TrimSpace(string(out)))
		if binDir, buildErr = os.MkdirTemp("", "sockplay-bench-bin-"); buildErr != nil {
			return
		}
		targets := map[string]string{"sockplay": "./host", "sockplay-echo": "./plugins/echo", "sockplay-hello": "./plugins/hello"}
		if _, err := os.Stat(filepath.Join(root, "plugins", "udpecho", "main.go")); err == nil {
			targets["sockplay-udpecho"] = "./plugins/udpecho"
		}
		for name, pkg := range targets {
			cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, name), pkg)
			cmd.Dir = root
			if b, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
				return
			}
		}
		// The Python examples, as make build installs them.
		cmd := exec.Command("python3", filepath.Join(root, "sdk", "python", "build_plugin.py"), binDir,
			"pyecho="+filepath.Join(root, "examples", "python", "echo.py"),
			"pyudpecho="+filepath.Join(root, "examples", "python", "udpecho.py"))
		if b, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build the Python examples: %v\n%s", err, b)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

// TestSmoke runs every scenario once, with tiny counts, against the real host
// and the direct server (and xinetd and tcpserver when installed), and checks
// the JSON report parses and every ratio is positive.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the real host")
	}
	cfg := DefaultConfig()
	cfg.BinDir = bin(t)
	cfg.Rounds = 1
	cfg.Params.Duration = 100 * time.Millisecond
	cfg.Params.MaxOps = 200
	cfg.Params.Conns = 4
	cfg.Params.Clients = 2
	cfg.MemoryConns = 50
	cfg.Restart = RestartParams{Kills: 2, EchoLoops: 2, HelloLoops: 1, CrashWindow: 100 * time.Millisecond}
	cfg.InProc = true
	cfg.DirectCmd = []string{os.Args[0], "-test.run=^$"}
	cfg.DirectEnv = []string{directEnv + "=1"}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Errors) > 0 {
		t.Fatalf("errors: %q", rep.Errors)
	}
	var buf bytes.Buffer
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	got, err := ReadJSON(&buf)
	if err != nil {
		t.Fatal(err)
	}
	ran := map[string]bool{}
	for _, row := range got.Rows {
		ran[row.Scenario] = true
		if row.Metric == CPUKey || row.Metric == HostCPUKey {
			continue // 10 ms ticks: a tiny run may measure none
		}
		if row.Ratio <= 0 {
			t.Errorf("%s %s: ratio %v, want > 0 (medians %v)", row.Scenario, row.Metric, row.Ratio, row.Median)
		}
		if row.Median[InProc] <= 0 {
			t.Errorf("%s %s: no in-process figure (medians %v)", row.Scenario, row.Metric, row.Median)
		}
		if row.PythonRatio <= 0 {
			t.Errorf("%s %s: python/plugin ratio %v, want > 0 (medians %v)", row.Scenario, row.Metric, row.PythonRatio, row.Median)
		}
		if tcp := !strings.HasPrefix(row.Scenario, "udp"); tcp && row.RulesRatio <= 0 {
			t.Errorf("%s %s: rules/direct ratio %v, want > 0 (medians %v)", row.Scenario, row.Metric, row.RulesRatio, row.Median)
		}
	}
	for _, s := range Scenarios() {
		if !ran[s.Name] && !(s.UDP && slicesHasPrefix(got.Notes, "UDP scenarios skipped")) {
			t.Errorf("scenario %s did not run; notes %q", s.Name, got.Notes)
		}
	}
	if got.Memory == nil || got.Memory.HostAfterKiB <= 0 || len(got.Memory.Servers) != 2 {
		t.Errorf("memory: %+v", got.Memory)
	}
	if got.Memory != nil && got.Memory.HostFDsAfter > got.Memory.HostFDsBefore+2 {
		t.Errorf("the host holds %d descriptors with %d connections handed off, had %d",
			got.Memory.HostFDsAfter, got.Memory.Conns, got.Memory.HostFDsBefore)
	}
	if r := got.Restart; r == nil || len(r.ServedAgainMs) != 2 || r.Refused != 0 || r.Failed != 0 {
		t.Errorf("restart: %+v", r)
	}
	var text bytes.Buffer
	if err := got.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", text.String())
}

func slicesHasPrefix(xs []string, prefix string) bool {
	for _, x := range xs {
		if strings.HasPrefix(x, prefix) {
			return true
		}
	}
	return false
}

// TestScaleSmoke runs both scaling measurements once with tiny sizes: two
// sizes of connections, and hosts of one and two copies of echo built under
// other names as scripts/bench-scale.sh builds them.
func TestScaleSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the real host")
	}
	cfg := DefaultConfig()
	cfg.BinDir = bin(t)
	cfg.Rounds = 1
	cfg.Params.Duration = 100 * time.Millisecond
	cfg.Scenarios = []string{ScaleConnsScenario, ScalePluginsScenario}
	cfg.ScaleConns = []int{1, 8}
	cfg.ScalePlugins = []int{1, 2}
	cfg.PluginCopies = t.TempDir()
	cfg.DirectCmd = []string{os.Args[0], "-test.run=^$"}
	cfg.DirectEnv = []string{directEnv + "=1"}
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		cmd := exec.Command("go", "build", "-ldflags", "-X main.name="+CopyName(i),
			"-o", filepath.Join(cfg.PluginCopies, "sockplay-"+CopyName(i)), "./plugins/echo")
		cmd.Dir = filepath.Dir(strings.TrimSpace(string(out)))
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build copy %d: %v\n%s", i, err, b)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Errors) > 0 || len(rep.Rows) > 0 || rep.Restart != nil {
		t.Fatalf("errors %q; rows %d and restart %v, want none", rep.Errors, len(rep.Rows), rep.Restart)
	}
	if len(rep.ConnsScale) != 4 {
		t.Fatalf("connections: %+v, want 2 sizes × plugin and direct", rep.ConnsScale)
	}
	for _, c := range rep.ConnsScale {
		if c.ReqS <= 0 || c.ServerKiB <= 0 || (c.Target == Plugin) != (c.HostKiB > 0) {
			t.Errorf("connections: %+v", c)
		}
	}
	if len(rep.PluginsScale) != 2 {
		t.Fatalf("plugins: %+v, want 2 sizes", rep.PluginsScale)
	}
	for i, p := range rep.PluginsScale {
		if p.Plugins != i+1 || p.StartMs <= 0 || p.HostKiB <= 0 || p.PluginKiB <= 0 || p.TotalKiB < p.HostKiB+int64(p.Plugins)*p.PluginKiB/2 {
			t.Errorf("plugins: %+v", p)
		}
	}
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", text.String())
}
