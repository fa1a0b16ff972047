//go:build unix

package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sockplay/sockplay/sdk"
)

var (
	fanoutClients  = flag.Int("chat.clients", 1000, "BenchmarkFanout: clients in the room")
	fanoutSenders  = flag.Int("chat.senders", 10, "BenchmarkFanout: how many of them send")
	fanoutRates    = flag.String("chat.rates", "200,300,400", "BenchmarkFanout: room message rates to run, messages/s")
	fanoutDuration = flag.Duration("chat.duration", 3*time.Second, "BenchmarkFanout: how long the senders send")
	fanoutLinger   = flag.String("chat.linger", "", "BenchmarkFanout: the server's chat.linger (default: the plugin's)")
	fanoutProcess  = flag.Bool("chat.process", false, "BenchmarkFanout: run the server in a process of its own and report its CPU per delivery")
)

// BenchmarkFanout fills a room with 1,000 clients, has 10 of them send at a
// steady total rate, and measures every delivery: deliveries/s (the messages
// times the receivers, over the time from the first send to the last
// delivery) and the p99 of the time from the scheduled send of a message to
// its arrival at the last of the 1,000 receivers. The schedule is open-loop:
// a late sender does not hide the delay it causes. Server and clients share
// the machine's cores. The run is bounded by -chat.duration, not b.N.
func BenchmarkFanout(b *testing.B) {
	for _, r := range bytes.Split([]byte(*fanoutRates), []byte(",")) {
		rate, err := strconv.Atoi(string(bytes.TrimSpace(r)))
		if err != nil || rate <= 0 {
			b.Fatalf("-chat.rates: bad rate %q", r)
		}
		b.Run(fmt.Sprintf("clients=%d/rate=%d", *fanoutClients, rate), func(b *testing.B) {
			fanout(b, *fanoutClients, *fanoutSenders, rate, *fanoutDuration)
		})
	}
}

func fanout(b *testing.B, clients, senders, rate int, d time.Duration) {
	raiseFileLimit(uint64(2*clients + 256))
	opts := map[string]string{}
	if *fanoutLinger != "" {
		opts["linger"] = *fanoutLinger
	}
	addr, serverCPU := benchServer(b, opts)
	total := int(int64(rate) * int64(d) / int64(time.Second))

	var (
		arrived   = make([]atomic.Int32, total) // receivers that have message i
		lastAt    = make([]atomic.Int64, total) // when the last receiver got it, ns since epoch
		delivered atomic.Int64
		joined    sync.WaitGroup
		synced    sync.WaitGroup
		allIn     sync.WaitGroup
		readers   sync.WaitGroup
	)
	conns := make([]net.Conn, clients)
	joined.Add(clients)
	synced.Add(clients)
	allIn.Add(1)
	for i := range conns {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			b.Fatalf("dial client %d: %v", i, err)
		}
		conns[i] = c
		if _, err := c.Write([]byte("/who\n")); err != nil {
			b.Fatal(err)
		}
		readers.Go(func() {
			r := bufio.NewReaderSize(c, 16<<10)
			joinDone, syncDone := false, false
			var n int64
			defer func() { delivered.Add(n) }()
			for {
				line, err := r.ReadSlice('\n')
				if err != nil {
					if !joinDone {
						joined.Done()
					}
					if !syncDone {
						synced.Done()
					}
					return
				}
				if id, ok := benchID(line); ok && id < total {
					now := time.Now().UnixNano()
					n++
					if arrived[id].Add(1) == int32(clients) {
						lastAt[id].Store(now)
					}
					continue
				}
				switch {
				case !joinDone && bytes.Contains(line, []byte("*** welcome")):
					joinDone = true
					joined.Done()
				case !syncDone && bytes.HasSuffix(line, []byte(": sync\n")):
					syncDone = true
					synced.Done()
				}
			}
		})
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
		readers.Wait()
	}()
	joined.Wait()
	// All have joined; once everyone has the sync line, the join notices
	// are behind them too.
	if _, err := conns[0].Write([]byte("sync\n")); err != nil {
		b.Fatal(err)
	}
	synced.Wait()

	b.ResetTimer()
	cpu0, scpu0 := cpuTime(), serverCPU()
	start := time.Now()
	interval := time.Second / time.Duration(rate)
	var line []byte
	for k := range total {
		due := start.Add(time.Duration(k) * interval)
		if wait := time.Until(due); wait > 0 {
			time.Sleep(wait)
		}
		line = fmt.Appendf(line[:0], "b %d %d\n", k, due.UnixNano())
		if _, err := conns[k%senders].Write(line); err != nil {
			b.Fatalf("send %d: %v", k, err)
		}
	}
	// Wait for the last deliveries, within reason.
	want := int64(total) * int64(clients)
	limit := time.Now().Add(10 * time.Second)
	for countArrived(arrived) < want && time.Now().Before(limit) {
		time.Sleep(5 * time.Millisecond)
	}
	b.StopTimer()
	cpu, scpu := cpuTime()-cpu0, serverCPU()-scpu0

	var got int64
	var last int64
	lat := make([]time.Duration, 0, total)
	for k := range total {
		got += int64(arrived[k].Load())
		if at := lastAt[k].Load(); at != 0 {
			sent := start.Add(time.Duration(k) * interval).UnixNano()
			lat = append(lat, time.Duration(at-sent))
			last = max(last, at)
		}
	}
	if len(lat) == 0 {
		b.Fatal("no message reached every receiver")
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) / float64(time.Millisecond)
	}
	elapsed := time.Duration(last - start.UnixNano())
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(got)/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1])/float64(time.Millisecond), "max-ms")
	// The room drops nothing: a delivery that did not come is a client it
	// disconnected, or one still waiting after the limit above.
	b.ReportMetric(float64(want-got), "lost")
	// CPU per delivery, server and clients together: unlike the latency it
	// hardly depends on what else the machine runs.
	if *fanoutProcess {
		// The clients' share is then this process's alone.
		b.ReportMetric(float64(scpu)/float64(time.Microsecond)/float64(max(got, 1)), "server-cpu-us/delivery")
	} else {
		cpu += scpu
	}
	b.ReportMetric(float64(cpu)/float64(time.Microsecond)/float64(max(got, 1)), "cpu-us/delivery")
}

// serverEnv makes the test binary a bare chat server: see benchServer.
const serverEnv = "SOCKPLAY_CHAT_BENCH_SERVER"

// benchServer starts the room: in-process through sdktest, or with
// -chat.process in a child process (the test binary again, see TestMain),
// so that the server's CPU can be told from the clients'. It returns the
// address and a function that reads the child's CPU time (0 in-process).
func benchServer(b *testing.B, opts map[string]string) (string, func() time.Duration) {
	if !*fanoutProcess {
		return start(b, opts).Addr, func() time.Duration { return 0 }
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), serverEnv+"=1", serverEnv+"_LINGER="+opts["linger"])
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stdin.Close(); _ = cmd.Wait() })
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("bench server: %v", err)
	}
	pid := cmd.Process.Pid
	return strings.TrimSpace(addr), func() time.Duration { return procCPU(pid) }
}

// runBenchServer serves a room on an ephemeral port, prints the address and
// serves until stdin ends.
func runBenchServer() int {
	cfg := DefaultConfig()
	if l := os.Getenv(serverEnv + "_LINGER"); l != "" {
		d, err := time.ParseDuration(l)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		cfg.Linger = d
	}
	srv := sdk.NewServer(newRoom(cfg, nopLogger{}), nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(ln.Addr())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	_, _ = io.Copy(io.Discard, os.Stdin)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
	<-done
	return 0
}

type nopLogger struct{}

func (nopLogger) Trace(string, ...any) {}
func (nopLogger) Debug(string, ...any) {}

// procCPU reads the user and system time of process pid.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * (time.Second / 100) // USER_HZ
}

// cpuTime is the process's user and system time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func countArrived(a []atomic.Int32) int64 {
	var n int64
	for i := range a {
		n += int64(a[i].Load())
	}
	return n
}

// benchID parses "NAME: b ID NANOS\n" and returns ID.
func benchID(line []byte) (int, bool) {
	i := bytes.Index(line, []byte(": b "))
	if i < 0 {
		return 0, false
	}
	rest := line[i+4:]
	j := bytes.IndexByte(rest, ' ')
	if j < 0 {
		return 0, false
	}
	id := 0
	for _, c := range rest[:j] {
		if c < '0' || c > '9' {
			return 0, false
		}
		id = id*10 + int(c-'0')
	}
	return id, true
}
