package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sockplay/sockplay/internal/e2e"
)

// apiStatus is the part of /api/status these tests read.
type apiStatus struct {
	HostPid int    `json:"host_pid"`
	Admin   string `json:"admin"`
	Plugins []struct {
		Name          string            `json:"name"`
		State         string            `json:"state"`
		Pid           int               `json:"pid"`
		Restarts      int               `json:"restarts"`
		Events        string            `json:"events"`
		ConnsActive   int64             `json:"conns_active"`
		ConnsTotal    uint64            `json:"conns_total"`
		Closed        map[string]uint64 `json:"closed"`
		BytesIn       uint64            `json:"bytes_in"`
		BytesOut      uint64            `json:"bytes_out"`
		DatagramsIn   uint64            `json:"datagrams_in"`
		DatagramsOut  uint64            `json:"datagrams_out"`
		EventsDropped uint64            `json:"events_dropped"`
	} `json:"plugins"`
}

func httpGet(t *testing.T, url string, header ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, b
}

func getStatus(t *testing.T, h *e2e.Host) apiStatus {
	t.Helper()
	code, b := httpGet(t, h.Admin+"api/status")
	var st apiStatus
	if code != 200 || json.Unmarshal(b, &st) != nil {
		t.Fatalf("/api/status: %d %s", code, b)
	}
	return st
}

// waitStatus polls /api/status (every 20 ms, 15 s at most) until cond holds
// for plugin name, and returns the last status.
func waitStatus(t *testing.T, h *e2e.Host, name, what string, cond func(p int, st apiStatus) bool) apiStatus {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		st := getStatus(t, h)
		for i, p := range st.Plugins {
			if p.Name == name && cond(i, st) {
				return st
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 15 s, still no %s for %s: %+v", what, name, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func plugin(st apiStatus, name string) int {
	for i, p := range st.Plugins {
		if p.Name == name {
			return i
		}
	}
	return -1
}

// metrics fetches /metrics and parses it with expfmt.
func metrics(t *testing.T, h *e2e.Host) map[string]*dto.MetricFamily {
	t.Helper()
	code, b := httpGet(t, h.Admin+"metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d %s", code, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v\n%s", err, b)
	}
	return fams
}

// metricValue is the value of family name's sample whose labels include
// labels (name=value pairs).
func metricValue(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("/metrics has no %s", name)
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	t.Fatalf("/metrics: no %s%v", name, labels)
	return 0
}

// echoConn sends payload to the echo plugin, reads it back, half-closes and
// waits for the server's end: an orderly close the client starts.
func echoConn(t *testing.T, addr string, payload []byte) {
	t.Helper()
	c := dial(t, addr)
	if _, err := c.Write(payload); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(payload))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("echo: %v, %d bytes back", err, len(got))
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if rest, err := io.ReadAll(c); err != nil || len(rest) != 0 {
		t.Fatalf("after the half-close: %q, %v", rest, err)
	}
	c.Close()
}

// After N known connections the counters are exactly N, and the bytes are
// the bytes sent; the same for datagrams; /metrics, the status file and
// --log-conns agree.
func TestObserveCounts(t *testing.T) {
	status := filepath.Join(t.TempDir(), "status.json")
	h := e2e.Start(t, e2e.Config{Enable: []string{"echo", "udpecho"},
		Args: []string{"--log-conns", "--status-file", status, "--set", "udpecho.prefix="}})
	const n = 7
	var sent uint64
	for i := range n {
		payload := bytes.Repeat([]byte{'a' + byte(i)}, 100*i+1) // echo has no line framing: any bytes
		echoConn(t, h.Addr("echo"), payload)
		sent += uint64(len(payload))
	}
	const datagrams = 5
	u, err := net.Dial("udp", h.Addr("udpecho"))
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	_ = u.SetDeadline(time.Now().Add(10 * time.Second))
	for i := range datagrams {
		// Each payload differs: udpecho's loop guard drops identical repeats.
		ping := fmt.Sprintf("ping%d", i)
		if _, err := u.Write([]byte(ping)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		if n, err := u.Read(buf); err != nil || string(buf[:n]) != ping {
			t.Fatalf("udpecho: %q %v", buf[:n], err)
		}
	}

	st := waitStatus(t, h, "echo", fmt.Sprintf("%d closed connections", n), func(i int, st apiStatus) bool {
		return st.Plugins[i].ConnsTotal == n && st.Plugins[i].Closed["eof"] == n
	})
	e := st.Plugins[plugin(st, "echo")]
	if e.ConnsActive != 0 || e.ConnsTotal != n || e.BytesIn != sent || e.BytesOut != sent || e.Events != "on" || e.EventsDropped != 0 {
		t.Errorf("echo: %+v; want %d connections, %d bytes each way", e, n, sent)
	}
	st = waitStatus(t, h, "udpecho", "the datagrams", func(i int, st apiStatus) bool {
		return st.Plugins[i].DatagramsIn == datagrams && st.Plugins[i].DatagramsOut == datagrams
	})
	if ue := st.Plugins[plugin(st, "udpecho")]; ue.BytesIn != 5*datagrams || ue.BytesOut != 5*datagrams {
		t.Errorf("udpecho: %+v", ue)
	}

	fams := metrics(t, h)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"sockplay_connections_total", []string{"plugin", "echo"}, n},
		{"sockplay_connections_active", []string{"plugin", "echo"}, 0},
		{"sockplay_connection_duration_seconds", []string{"plugin", "echo"}, n},
		{"sockplay_connections_closed_total", []string{"plugin", "echo", "reason", "eof"}, n},
		{"sockplay_received_bytes_total", []string{"plugin", "echo"}, float64(sent)},
		{"sockplay_sent_bytes_total", []string{"plugin", "echo"}, float64(sent)},
		{"sockplay_datagrams_total", []string{"plugin", "udpecho", "direction", "in"}, datagrams},
		{"sockplay_datagrams_total", []string{"plugin", "udpecho", "direction", "out"}, datagrams},
		{"sockplay_received_bytes_total", []string{"plugin", "udpecho"}, 5 * datagrams},
		{"sockplay_plugin_up", []string{"plugin", "echo"}, 1},
		{"sockplay_plugin_restarts_total", []string{"plugin", "echo"}, 0},
		{"sockplay_events_dropped_total", []string{"plugin", "echo"}, 0},
		{"sockplay_panics_total", []string{"plugin", "echo"}, 0},
	} {
		if got := metricValue(t, fams, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total", "process_resident_memory_bytes"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("/metrics has no %s (the Go and process collectors)", name)
		}
	}

	// The status file catches up within its throttle (at most once a second).
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, stderr, code := e2e.Run(t, "status", "--status-file", status, "--json")
		if code != 0 {
			t.Fatalf("status --json: %d %s", code, stderr)
		}
		var fst apiStatus
		if err := json.Unmarshal([]byte(out), &fst); err != nil {
			t.Fatal(err)
		}
		if i := plugin(fst, "echo"); i >= 0 && fst.Plugins[i].ConnsTotal == n && fst.Plugins[i].BytesIn == sent {
			if fst.Admin != h.Admin {
				t.Errorf("the status file's admin %q, want %q", fst.Admin, h.Admin)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the status file has not caught up:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	out, _, _ := e2e.Run(t, "status", "--status-file", status)
	if row := statusRow(out, "echo"); len(row) < 9 || row[6] != "0" || row[7] != fmt.Sprint(n) {
		t.Errorf("sockplay status, echo: %v\n%s", row, out)
	}
	if got := strings.Count(h.Stderr(), "sockplay.echo: connection closed:"); got != n ||
		strings.Count(h.Stderr(), "reason=eof") != n {
		t.Errorf("--log-conns: %d lines, want %d:\n%s", got, n, h.Stderr())
	}
	h.Stop(15 * time.Second)
}

// A killed plugin's restart is counted, and the connection it had open is
// counted closed with reason "exited".
func TestObserveRestart(t *testing.T) {
	h := e2e.Start(t, e2e.Config{Enable: []string{"echo"}})
	c := dial(t, h.Addr("echo"))
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, h, "echo", "the open connection", func(i int, st apiStatus) bool { return st.Plugins[i].ConnsActive == 1 })
	pid := h.Plugins["echo"].Pid
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	st := waitStatus(t, h, "echo", "the restart", func(i int, st apiStatus) bool {
		p := st.Plugins[i]
		return p.Restarts == 1 && p.State == "running" && p.Pid != pid && p.ConnsActive == 0
	})
	if e := st.Plugins[plugin(st, "echo")]; e.ConnsTotal != 1 || e.Closed["exited"] != 1 {
		t.Errorf("after the kill: %+v", e)
	}
	if got := metricValue(t, metrics(t, h), "sockplay_plugin_restarts_total", "plugin", "echo"); got != 1 {
		t.Errorf("sockplay_plugin_restarts_total = %v, want 1", got)
	}
	// The new process reports too.
	echoConn(t, h.Addr("echo"), []byte("after"))
	waitStatus(t, h, "echo", "the new process's connection", func(i int, st apiStatus) bool {
		return st.Plugins[i].ConnsTotal == 2 && st.Plugins[i].Closed["eof"] == 1
	})
	code, b := httpGet(t, h.Admin+"api/events?plugin=echo")
	var evs []struct{ Kind, Reason string }
	if code != 200 || json.Unmarshal(b, &evs) != nil {
		t.Fatalf("/api/events: %d %s", code, b)
	}
	var kinds []string
	for _, e := range evs {
		kinds = append(kinds, e.Kind+":"+e.Reason)
	}
	if got := strings.Join(kinds, " "); !strings.Contains(got, "open: ") || !strings.Contains(got, "close:exited") ||
		!strings.Contains(got, "exit:") || !strings.Contains(got, "restart:") || !strings.HasSuffix(got, "open: close:eof") {
		t.Errorf("events: %s", got)
	}
	h.Stop(15 * time.Second)
}

// A plugin without the events feature (here: SOCKPLAY_EVENTS=off, the
// diagnostic that turns them off) still runs; its status says "no events".
func TestObserveNoEvents(t *testing.T) {
	h := e2e.Start(t, e2e.Config{Enable: []string{"echo"}, Env: []string{"SOCKPLAY_EVENTS=off"}})
	st := waitStatus(t, h, "echo", `"no events"`, func(i int, st apiStatus) bool { return st.Plugins[i].Events == "no events" })
	echoConn(t, h.Addr("echo"), []byte("still served"))
	if p := st.Plugins[plugin(st, "echo")]; p.State != "running" || p.ConnsTotal != 0 {
		t.Errorf("echo: %+v", p)
	}
	h.Stop(15 * time.Second)
}

// The Python SDK's plugins report their connections to the same observer.
func TestObservePython(t *testing.T) {
	h := e2e.Start(t, e2e.Config{Enable: []string{"pyecho"}})
	// The first, empty batch says the stream is open before any connection.
	waitStatus(t, h, "pyecho", "events on", func(i int, st apiStatus) bool { return st.Plugins[i].Events == "on" })
	echoConn(t, h.Addr("pyecho"), []byte("from python\n"))
	st := waitStatus(t, h, "pyecho", "the connection", func(i int, st apiStatus) bool {
		return st.Plugins[i].ConnsTotal == 1 && st.Plugins[i].ConnsActive == 0
	})
	if p := st.Plugins[plugin(st, "pyecho")]; p.Events != "on" || p.BytesIn != 12 || p.BytesOut != 12 {
		t.Errorf("pyecho: %+v", p)
	}
	h.Stop(15 * time.Second)
}

// The admin endpoint: a token, 404 for an unknown plugin everywhere.
func TestAdminEndpoint(t *testing.T) {
	h := e2e.Start(t, e2e.Config{Enable: []string{"echo"}, Args: []string{"--admin-token", "s3cret"}})
	auth := []string{"Authorization", "Bearer s3cret"}
	for _, path := range []string{"", "metrics", "api/status", "api/plugins/echo", "static/app.js"} {
		if code, _ := httpGet(t, h.Admin+path); code != http.StatusUnauthorized {
			t.Errorf("/%s without the token: %d, want 401", path, code)
		}
		if code, _ := httpGet(t, h.Admin+path, "Authorization", "Bearer wrong"); code != http.StatusUnauthorized {
			t.Errorf("/%s with a wrong token: %d, want 401", path, code)
		}
		if code, b := httpGet(t, h.Admin+path, auth...); code != http.StatusOK {
			t.Errorf("/%s with the token: %d %s", path, code, b)
		}
	}
	for _, path := range []string{"plugins/nosuch", "api/plugins/nosuch", "api/connections?plugin=nosuch",
		"api/events?plugin=nosuch", "api/stream?plugin=nosuch", "api/trace?plugin=nosuch"} {
		if code, b := httpGet(t, h.Admin+path, auth...); code != http.StatusNotFound || !strings.Contains(string(b), `"nosuch"`) {
			t.Errorf("/%s: %d %q, want 404 naming the plugin", path, code, b)
		}
	}
	code, b := httpGet(t, h.Admin+"api/plugins/echo", auth...)
	var one struct {
		Plugin struct{ Name string }
	}
	if code != 200 || json.Unmarshal(b, &one) != nil || one.Plugin.Name != "echo" {
		t.Errorf("/api/plugins/echo: %d %s", code, b)
	}
	_, stderr, code2 := e2e.Run(t, "trace", "nosuch", "--admin", strings.TrimSuffix(strings.TrimPrefix(h.Admin, "http://"), "/"),
		"--admin-token", "s3cret")
	if code2 != 1 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, `"nosuch"`) {
		t.Errorf("sockplay trace nosuch: exit %d, %q", code2, stderr)
	}
	h.Stop(15 * time.Second)
}

// Bad --admin, --trace and --trace-bytes values are one error line each,
// and nothing is left running.
func TestObserveBadFlags(t *testing.T) {
	dir := e2e.PluginDir(t, "echo")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--admin", "0.0.0.0:0"}, "--admin 0.0.0.0:0 is not a loopback address: set --admin-token TOKEN"},
		{[]string{"--admin", ":0"}, "--admin :0 is not a loopback address"},
		{[]string{"--admin", "nonsense"}, `--admin "nonsense": want HOST:PORT or off`},
		{[]string{"--admin", "127.0.0.1:99999"}, `--admin "127.0.0.1:99999": port "99999"`},
		{[]string{"--admin", "example.com:80"}, `--admin "example.com:80": the host must be an IP address or localhost`},
		{[]string{"--trace", "nosuch"}, `--trace nosuch: no plugin "nosuch" is enabled`},
		{[]string{"--trace", "echo", "--trace-bytes", "0"}, "--trace-bytes 0: want 1 to"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			args := append([]string{"serve", "--plugin-dir", dir, "--listen", "echo=127.0.0.1:0",
				"--status-file", filepath.Join(t.TempDir(), "s.json")}, c.args...)
			out, stderr, code := e2e.Run(t, args...)
			if code == 0 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, c.want) || out != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want one line with %q", code, out, stderr, c.want)
			}
		})
	}
	// A port in use is one line too.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, stderr, code := e2e.Run(t, "serve", "--plugin-dir", dir, "--listen", "echo=127.0.0.1:0",
		"--status-file", filepath.Join(t.TempDir(), "s.json"), "--admin", ln.Addr().String())
	if code != 1 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "--admin "+ln.Addr().String()) {
		t.Errorf("admin port in use: exit %d, %q", code, stderr)
	}
}

// sockplay trace follows a traced plugin's bytes, escaped, both ways.
func TestTraceCommand(t *testing.T) {
	status := filepath.Join(t.TempDir(), "status.json")
	h := e2e.Start(t, e2e.Config{Enable: []string{"echo"}, Args: []string{"--trace", "echo", "--status-file", status}})
	for _, hex := range []bool{false, true} {
		args := []string{"trace", "echo", "--status-file", status, "--count", "2"}
		if hex {
			args = append(args, "--hex")
		}
		var out, errOut e2e.Buffer
		cmd := exec.Command(filepath.Join(e2e.Bin(t), "sockplay"), args...)
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		deadline := time.Now().Add(15 * time.Second)
		for !strings.Contains(errOut.String(), "sockplay trace: following echo") {
			if time.Now().After(deadline) {
				_ = cmd.Process.Kill()
				<-done
				t.Fatalf("trace did not start: %s", errOut.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
		echoConn(t, h.Addr("echo"), []byte("hi\x1b[2J\r\n"))
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("trace: %v: %s", err, errOut.String())
			}
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Fatalf("trace printed no 2 records:\n%s", out.String())
		}
		got := out.String()
		lines := strings.Split(strings.TrimRight(got, "\n"), "\n")
		want := []string{`hi\x1b[2J\r\n`, `hi\x1b[2J\r\n`}
		if hex {
			want = []string{"00000000  68 69 1b 5b 32 4a 0d 0a                           |hi.[2J..|"}
			want = append(want, want[0])
		}
		if len(lines) != 4 || !strings.Contains(lines[0], " echo conn ") || !strings.Contains(lines[0], " in, 8 bytes at 0") ||
			!strings.Contains(lines[2], " out, 8 bytes at 0") || lines[1] != want[0] || lines[3] != want[1] || strings.Contains(got, "\x1b") {
			t.Errorf("trace (hex %v):\n%s", hex, got)
		}
		if strings.Contains(errOut.String(), "not in trace mode") {
			t.Errorf("trace of a traced plugin warns: %s", errOut.String())
		}
	}

	// A plugin that is not in trace mode: trace says nothing will come.
	status2 := filepath.Join(t.TempDir(), "s.json")
	h2 := e2e.Start(t, e2e.Config{Enable: []string{"echo"}, Args: []string{"--status-file", status2}})
	var errOut e2e.Buffer
	cmd := exec.Command(filepath.Join(e2e.Bin(t), "sockplay"), "trace", "echo", "--status-file", status2)
	cmd.Stderr = &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(errOut.String(), "sockplay trace: echo is not in trace mode: nothing will come (start the host with --trace echo)") {
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	<-done
	if !strings.Contains(errOut.String(), "echo is not in trace mode") {
		t.Errorf("trace of a plugin not in trace mode: %q", errOut.String())
	}
	h2.Stop(15 * time.Second)
	h.Stop(15 * time.Second)
}
