package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

var (
	fanoutClients  = flag.Int("chat.clients", 1000, "BenchmarkFanout: clients in the room")
	fanoutSenders  = flag.Int("chat.senders", 10, "BenchmarkFanout: how many of them send")
	fanoutRates    = flag.String("chat.rates", "200,300,400", "BenchmarkFanout: room message rates to run, messages/s")
	fanoutDuration = flag.Duration("chat.duration", 3*time.Second, "BenchmarkFanout: how long the senders send")
	fanoutLinger   = flag.String("chat.linger", "", "BenchmarkFanout: the server's chat.linger (default: the plugin's)")
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
	in := start(b, opts)
	total := int(int64(rate) * int64(d) / int64(time.Second))

	var (
		arrived   = make([]atomic.Int32, total) // receivers that have message i
		lastAt    = make([]atomic.Int64, total) // when the last receiver got it, ns since epoch
		delivered atomic.Int64
		dropped   atomic.Int64
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
		c, err := net.DialTimeout("tcp", in.Addr, 5*time.Second)
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
				case bytes.Contains(line, []byte(" lines dropped")):
					if f := bytes.Fields(line); len(f) > 1 {
						k, _ := strconv.Atoi(string(f[1]))
						dropped.Add(int64(k))
					}
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
	cpu0 := cpuTime()
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
	for countArrived(arrived)+dropped.Load() < want && time.Now().Before(limit) {
		time.Sleep(5 * time.Millisecond)
	}
	b.StopTimer()
	cpu := cpuTime() - cpu0

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
	b.ReportMetric(float64(max(want-got-dropped.Load(), 0)), "lost")
	// CPU per delivery, server and clients together: unlike the latency it
	// hardly depends on what else the machine runs.
	b.ReportMetric(float64(cpu)/float64(time.Microsecond)/float64(max(got, 1)), "cpu-us/delivery")
	b.ReportMetric(float64(dropped.Load()), "dropped")
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
