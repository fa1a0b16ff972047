package load

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is a bench run's outcome.
type Report struct {
	Started  time.Time `json:"started"`
	Machine  string    `json:"machine"`
	Rounds   int       `json:"rounds"`
	Duration string    `json:"duration"` // of one measurement
	Targets  []string  `json:"targets"`
	Rows     []Row     `json:"rows"`
	Checks   []Check   `json:"checks"`
	Memory   *Memory   `json:"memory,omitempty"`
	Restart  *Restart  `json:"restart,omitempty"`
	Notes    []string  `json:"notes,omitempty"`
	Errors   []string  `json:"errors,omitempty"`

	// ConnsScale and PluginsScale are the scaling measurements'.
	ConnsScale   []ConnsScale   `json:"conns_scale,omitempty"`
	PluginsScale []PluginsScale `json:"plugins_scale,omitempty"`

	// Results holds the samples while the run goes: scenario, metric,
	// target, one value per round.
	Results map[string]map[string]map[string][]float64 `json:"-"`
}

// Row is one figure of one scenario across the targets.
type Row struct {
	Scenario     string               `json:"scenario"`
	Title        string               `json:"title"`
	Metric       string               `json:"metric"`
	Unit         string               `json:"unit"`
	HigherBetter bool                 `json:"higher_better"`
	Samples      map[string][]float64 `json:"samples"` // per target, one per round
	Median       map[string]float64   `json:"median"`
	// Ratio is plugin/direct of the medians (0 when either is missing);
	// Diff is plugin−direct.
	Ratio float64 `json:"ratio"`
	Diff  float64 `json:"diff"`
	// PythonRatio is python/plugin of the medians: the Python examples
	// against the Go plugins (0 when either is missing).
	PythonRatio float64 `json:"python_ratio,omitempty"`
	// RulesRatio is rules/direct of the medians: echo with access rules
	// against the direct server (0 when either is missing).
	RulesRatio float64 `json:"rules_ratio,omitempty"`
}

// Check is one of the targets.
type Check struct {
	Name string `json:"name"`
	Want string `json:"want"`
	Got  string `json:"got"`
	Met  bool   `json:"met"`
}

func (r *Report) add(s Scenario, target string, got map[string]float64) {
	if r.Results[s.Name] == nil {
		r.Results[s.Name] = map[string]map[string][]float64{}
	}
	for _, m := range s.Metrics {
		v, ok := got[m.Key]
		if !ok {
			continue
		}
		if r.Results[s.Name][m.Key] == nil {
			r.Results[s.Name][m.Key] = map[string][]float64{}
		}
		r.Results[s.Name][m.Key][target] = append(r.Results[s.Name][m.Key][target], v)
	}
}

// finish turns the samples into rows of medians and evaluates the checks.
func (r *Report) finish(scenarios []Scenario) {
	for _, s := range scenarios {
		for _, m := range s.Metrics {
			samples := r.Results[s.Name][m.Key]
			if len(samples) == 0 {
				continue
			}
			row := Row{Scenario: s.Name, Title: s.Title, Metric: m.Key, Unit: m.Unit, HigherBetter: m.HigherBetter,
				Samples: samples, Median: map[string]float64{}}
			for t, xs := range samples {
				row.Median[t] = Median(xs)
			}
			p, okp := row.Median[Plugin]
			d, okd := row.Median[Direct]
			if okp && okd && d > 0 {
				row.Ratio, row.Diff = p/d, p-d
			}
			if py, ok := row.Median[Python]; ok && okp && p > 0 {
				row.PythonRatio = py / p
			}
			if ru, ok := row.Median[Rules]; ok && okd && d > 0 {
				row.RulesRatio = ru / d
			}
			r.Rows = append(r.Rows, row)
		}
	}
	ratio := func(scenario, metric string, min float64, name string) {
		row := r.Row(scenario, metric)
		if row == nil || row.Ratio == 0 {
			return
		}
		r.Checks = append(r.Checks, Check{Name: name, Want: fmt.Sprintf("≥ %.2f × direct", min),
			Got: fmt.Sprintf("%.2f × direct", row.Ratio), Met: row.Ratio >= min})
	}
	if row := r.Row("pingpong", "p50_us"); row != nil && row.Ratio != 0 {
		r.Checks = append(r.Checks, Check{Name: "ping-pong p50", Want: "≤ direct + 10 µs",
			Got: fmt.Sprintf("direct %+.1f µs", row.Diff), Met: row.Diff <= 10})
	}
	ratio("bulk", "mb_s", 0.95, "bulk throughput")
	ratio("conns64", "req_s", 0.95, "64-connection throughput")
	ratio("connrate", "conn_s", 0.9, "connections/s")
	if row := r.Row("connrate", "conn_s"); row != nil {
		for _, classic := range []string{Xinetd, TCPServer} {
			p, c := row.Median[Plugin], row.Median[classic]
			if p > 0 && c > 0 {
				r.Checks = append(r.Checks, Check{Name: "connections/s vs " + classic, Want: "≥ 5 × " + classic,
					Got: fmt.Sprintf("%.1f × %s", p/c, classic), Met: p/c >= 5})
			}
		}
	}
	if row := r.Row("connrate", "conn_s"); row != nil && row.RulesRatio > 0 {
		r.Checks = append(r.Checks, Check{Name: "connections/s with rules", Want: "≥ 0.85 × direct",
			Got: fmt.Sprintf("%.2f × direct", row.RulesRatio), Met: row.RulesRatio >= 0.85})
	}
	if rs := r.Restart; rs != nil && len(rs.ServedAgainMs) > 0 {
		r.Checks = append(r.Checks,
			Check{Name: "restart after kill -9, median", Want: "≤ 100 ms", Got: fmt.Sprintf("%.1f ms", rs.MedianMs), Met: rs.MedianMs <= 100},
			Check{Name: "restart after kill -9, p90", Want: "≤ 150 ms", Got: fmt.Sprintf("%.1f ms", rs.P90Ms), Met: rs.P90Ms <= 150},
			Check{Name: "restart: clients refused", Want: "0", Got: strconv.Itoa(rs.Refused), Met: rs.Refused == 0})
	}
	if m := r.Memory; m != nil && m.HostAfterKiB > 0 {
		r.Checks = append(r.Checks, Check{Name: fmt.Sprintf("host memory, %d idle connections", m.Conns),
			Want: "< 64 MiB", Got: fmt.Sprintf("%.1f MiB", float64(m.HostAfterKiB)/1024), Met: m.HostAfterKiB < 64<<10})
	}
}

// Row returns the row of scenario's metric, or nil.
func (r *Report) Row(scenario, metric string) *Row {
	for i := range r.Rows {
		if r.Rows[i].Scenario == scenario && r.Rows[i].Metric == metric {
			return &r.Rows[i]
		}
	}
	return nil
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// ReadJSON parses what WriteJSON wrote.
func ReadJSON(rd io.Reader) (*Report, error) {
	var r Report
	if err := json.NewDecoder(rd).Decode(&r); err != nil {
		return nil, fmt.Errorf("bench report: %w", err)
	}
	return &r, nil
}

// WriteText writes the report as tables: medians per target, the
// plugin/direct ratio, the targets met or missed, and memory.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "sockplay data-path benchmark, %s\n", r.Started.Format(time.RFC3339))
	fmt.Fprintf(&b, "%s\n", r.Machine)
	fmt.Fprintf(&b, "medians of %d rounds, %s per measurement, targets in turn\n\n", r.Rounds, r.Duration)

	cols := slices.DeleteFunc(slices.Clone(r.Targets), func(t string) bool { return t == Plugin || t == Direct })
	python := slices.Contains(r.Targets, Python)
	tw := tabwriter.NewWriter(&b, 0, 0, 1, ' ', tabwriter.AlignRight|tabwriter.Debug)
	head := "scenario\tfigure\tplugin\tdirect\tplugin/direct\t"
	for _, c := range cols {
		head += c + "\t"
	}
	if python {
		head += "python/plugin\t"
	}
	rules := slices.Contains(r.Targets, Rules)
	if rules {
		head += "rules/direct\t"
	}
	fmt.Fprintln(tw, head)
	for _, row := range r.Rows {
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t", row.Scenario, figure(row), num(row.Median, Plugin), num(row.Median, Direct), ratioText(row))
		for _, c := range cols {
			line += num(row.Median, c) + "\t"
		}
		if python {
			line += pythonRatioText(row) + "\t"
		}
		if rules {
			line += ratioOf(row.RulesRatio) + "\t"
		}
		fmt.Fprintln(tw, line)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.Checks) > 0 {
		b.WriteString("\ntargets:\n")
		for _, c := range r.Checks {
			mark := "met   "
			if !c.Met {
				mark = "MISSED"
			}
			fmt.Fprintf(&b, "  %s  %-36s want %-18s got %s\n", mark, c.Name, c.Want, c.Got)
		}
	}
	if m := r.Memory; m != nil {
		fmt.Fprintf(&b, "\nmemory, idle connections (VmRSS):\n")
		fmt.Fprintf(&b, "  host        %7.1f MiB → %7.1f MiB with %d connections handed off; descriptors %d → %d\n",
			kib(m.HostBeforeKiB), kib(m.HostAfterKiB), m.Conns, m.HostFDsBefore, m.HostFDsAfter)
		for _, s := range m.Servers {
			fmt.Fprintf(&b, "  %-10s  %7.1f MiB → %7.1f MiB with %d connections: %.1f KiB per connection\n",
				s.Target, kib(s.BeforeKiB), kib(s.AfterKiB), s.Conns, s.PerConnKiB)
		}
	}
	if rs := r.Restart; rs != nil {
		fmt.Fprintf(&b, "\nrestart: kill -9 of echo %d times (%s apart), under %d echo and %d hello loops:\n",
			rs.Kills, rs.CrashWindow+" + 0.3s", rs.EchoLoops, rs.HelloLoops)
		fmt.Fprintf(&b, "  served again after median %.1f ms, p90 %.1f ms, max %.1f ms (each: %s)\n",
			rs.MedianMs, rs.P90Ms, rs.MaxMs, msList(rs.ServedAgainMs))
		fmt.Fprintf(&b, "  %d connections: %d refused, %d lost that were open in the killed process, %d failed otherwise; %d standby takeovers\n",
			rs.Attempts, rs.Refused, rs.LostOpen, rs.Failed, rs.StandbyTakeovers)
		for _, f := range rs.Failures {
			fmt.Fprintf(&b, "  failure: %s\n", f)
		}
		fmt.Fprintf(&b, "  one idle echo process: RSS %.1f MiB, of which anonymous %.1f MiB (the rest: the binary's pages, shared by processes of it); page tables %d KiB\n",
			kib(rs.PluginRSSKiB), kib(rs.PluginAnonKiB), rs.PluginPTEKiB)
	}
	if len(r.ConnsScale) > 0 {
		fmt.Fprintf(&b, "\nconnections at once, 64-byte ping-pong on each (medians of %d rounds):\n", r.Rounds)
		tw := tabwriter.NewWriter(&b, 0, 0, 1, ' ', tabwriter.AlignRight|tabwriter.Debug)
		fmt.Fprintln(tw, "connections\ttarget\tround trips/s\tp99 µs\tCPU µs/round trip\thost CPU µs\tserver RSS MiB\tKiB/connection\thost RSS MiB\t")
		// KiB per connection is the growth from the target's smallest
		// row: a server measured before each step is not idle any more
		// (the runtime keeps what the previous steps and rounds grew to).
		base := map[string]ConnsScale{}
		for _, c := range r.ConnsScale {
			if b, ok := base[c.Target]; !ok || c.Conns < b.Conns {
				base[c.Target] = c
			}
		}
		for _, c := range r.ConnsScale {
			per := "-"
			if b := base[c.Target]; c.Conns > b.Conns {
				per = fmt.Sprintf("%.1f", float64(c.ServerKiB-b.ServerKiB)/float64(c.Conns-b.Conns))
			}
			host := "-"
			if c.HostKiB > 0 {
				host = fmt.Sprintf("%.1f", kib(c.HostKiB))
			}
			fmt.Fprintf(tw, "%d\t%s\t%.0f\t%.0f\t%.1f\t%.1f\t%.1f\t%s\t%s\t\n",
				c.Conns, c.Target, c.ReqS, c.P99Us, c.CPUUs, c.HostCPUUs, kib(c.ServerKiB), per, host)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(r.PluginsScale) > 0 {
		fmt.Fprintf(&b, "\nplugins served by one host (copies of echo; medians of %d starts):\n", r.Rounds)
		tw := tabwriter.NewWriter(&b, 0, 0, 1, ' ', tabwriter.AlignRight|tabwriter.Debug)
		fmt.Fprintln(tw, "plugins\tready after ms\thost RSS MiB\tRSS MiB a plugin\tanonymous MiB a plugin\tall RSS MiB\tall PSS MiB\t")
		for _, p := range r.PluginsScale {
			fmt.Fprintf(tw, "%d\t%.0f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t\n", p.Plugins, p.StartMs, kib(p.HostKiB),
				kib(p.PluginKiB), kib(p.PluginAnonKiB), kib(p.TotalKiB), kib(p.TotalPSSKiB))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	for _, e := range r.Errors {
		fmt.Fprintf(&b, "error: %s\n", e)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func figure(row Row) string {
	if row.Unit == "µs" {
		return strings.TrimSuffix(row.Metric, "_us") + " µs"
	}
	return row.Unit
}

func kib(k int64) float64 { return float64(k) / 1024 }

func msList(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.0f", x)
	}
	return strings.Join(parts, " ")
}

func num(m map[string]float64, t string) string {
	v, ok := m[t]
	switch {
	case !ok:
		return "-"
	case v >= 1000:
		return fmt.Sprintf("%.0f", v)
	default:
		return fmt.Sprintf("%.1f", v)
	}
}

func ratioText(row Row) string {
	if row.Ratio == 0 {
		return "-"
	}
	if row.Unit == "µs" {
		return fmt.Sprintf("%.2f (%+.1f µs)", row.Ratio, row.Diff)
	}
	return fmt.Sprintf("%.2f", row.Ratio)
}

func ratioOf(x float64) string {
	if x == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", x)
}

func pythonRatioText(row Row) string {
	if row.PythonRatio == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", row.PythonRatio)
}
