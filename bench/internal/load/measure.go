package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"time"
)

// Params bound and shape one measurement.
type Params struct {
	// Duration is how long one measurement runs.
	Duration time.Duration
	// MaxOps bounds the operations of one measurement per connection (or per
	// client): a measurement ends at Duration or MaxOps, whichever comes first.
	MaxOps int
	// Conns is the number of connections of the many-connections ping-pong.
	Conns int
	// Clients is the number of concurrent clients of the connection-rate and
	// UDP-rate measurements.
	Clients int
	// MsgSize is the ping-pong message size.
	MsgSize int
	// BulkChunk is the size of each bulk write.
	BulkChunk int
}

// DefaultParams are the figures: 64-byte messages, 64 KiB bulk
// writes, 64 connections, 8 connecting clients, 2 s per measurement.
func DefaultParams() Params {
	return Params{Duration: 2 * time.Second, MaxOps: 2_000_000, Conns: 64, Clients: 8, MsgSize: 64, BulkChunk: 64 << 10}
}

// Validate reports a Params that cannot run.
func (p Params) Validate() error {
	switch {
	case p.Duration <= 0 || p.Duration > 10*time.Minute:
		return fmt.Errorf("duration %s: want more than 0 and at most 10m", p.Duration)
	case p.MaxOps < 1:
		return fmt.Errorf("max ops %d: want at least 1", p.MaxOps)
	case p.Conns < 1 || p.Conns > 4096:
		return fmt.Errorf("conns %d: want 1 to 4096", p.Conns)
	case p.Clients < 1 || p.Clients > 1024:
		return fmt.Errorf("clients %d: want 1 to 1024", p.Clients)
	case p.MsgSize < 1 || p.MsgSize > 1400:
		return fmt.Errorf("message size %d: want 1 to 1400", p.MsgSize)
	case p.BulkChunk < 1 || p.BulkChunk > 16<<20:
		return fmt.Errorf("bulk chunk %d: want 1 to 16 MiB", p.BulkChunk)
	}
	return nil
}

// Keys of a measurement's result besides its metrics: the operations it
// counted (MB for bulk), and the CPU figures Run adds.
const (
	opsKey     = "ops"
	CPUKey     = "cpu_us_op"
	HostCPUKey = "host_cpu_us_op"
)

// slack is how long past a measurement's end its sockets may still block.
const slack = 5 * time.Second

// warmup is the number of unrecorded round trips before a ping-pong.
const warmup = 200

// Metric names one figure a scenario reports.
type Metric struct {
	Key          string // "p50_us"
	Unit         string // "µs"
	HigherBetter bool
}

// Scenario is one kind of measurement.
type Scenario struct {
	Name    string
	Title   string
	UDP     bool // measures the target's UDP address, not its TCP one
	Classic bool // also runs against xinetd and tcpserver
	Metrics []Metric
	Run     func(ctx context.Context, addr string, p Params) (map[string]float64, error)
}

// Scenarios are every measurement, in the order a round runs them.
func Scenarios() []Scenario {
	lat := func(prefix string) []Metric {
		return []Metric{{prefix + "p50_us", "µs", false}, {prefix + "p99_us", "µs", false}}
	}
	// Every scenario also reports the CPU time its server spent per
	// operation (round trip, connection, datagram; MB for bulk), and, for
	// the plugin, the host's share of it: the noise-proof half of the story.
	cpu := func(ms []Metric, op string) []Metric {
		return append(ms, Metric{CPUKey, "CPU µs/" + op, false}, Metric{HostCPUKey, "host CPU µs/" + op, false})
	}
	return []Scenario{
		{Name: "pingpong", Title: "1 connection, 64-byte ping-pong", Metrics: cpu(lat(""), "round trip"), Run: runPingPong},
		{Name: "bulk", Title: "1 connection, 64 KiB writes echoed back", Classic: true,
			Metrics: cpu([]Metric{{"mb_s", "MB/s", true}}, "MB"), Run: runBulk},
		{Name: "conns64", Title: "64 connections, 64-byte ping-pong",
			Metrics: cpu([]Metric{{"req_s", "req/s", true}, {"p99_us", "µs", false}}, "round trip"), Run: runMany},
		{Name: "connrate", Title: "8 clients: connect, one 64-byte echo, close", Classic: true,
			Metrics: cpu([]Metric{{"conn_s", "conn/s", true}}, "conn"), Run: runConnRate},
		{Name: "udp-pingpong", Title: "1 UDP client, 64-byte datagram ping-pong", UDP: true,
			Metrics: cpu(lat(""), "datagram"), Run: runUDPPingPong},
		{Name: "udp-rate", Title: "8 UDP clients, 64-byte datagram ping-pong", UDP: true,
			Metrics: cpu([]Metric{{"dgram_s", "datagrams/s", true}}, "datagram"), Run: runUDPRate},
	}
}

func dial(ctx context.Context, addr string) (*net.TCPConn, error) {
	d := net.Dialer{Timeout: slack}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// pingPong does round trips of msg on c until deadline or max recorded,
// after warm unrecorded ones, appending each round trip's time to lat.
func pingPong(c net.Conn, msg []byte, deadline time.Time, warm, max int, lat []time.Duration) ([]time.Duration, error) {
	if err := c.SetDeadline(deadline.Add(slack)); err != nil {
		return lat, err
	}
	buf := make([]byte, len(msg))
	// The warm-up takes at most a fifth of the time, so that a slow server (a
	// race-instrumented one in the smoke test) still gets measured.
	warmEnd := time.Now().Add(time.Until(deadline) / 5)
	for i := 0; i < warm && time.Now().Before(warmEnd); i++ {
		if err := roundTrip(c, msg, buf); err != nil {
			return lat, err
		}
	}
	for n := 0; n < max; n++ {
		t := time.Now()
		if !t.Before(deadline) {
			break
		}
		if err := roundTrip(c, msg, buf); err != nil {
			return lat, err
		}
		lat = append(lat, time.Since(t))
	}
	return lat, nil
}

func roundTrip(c net.Conn, msg, buf []byte) error {
	if _, err := c.Write(msg); err != nil {
		return err
	}
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	return nil
}

func message(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + byte(i%26)
	}
	return b
}

func runPingPong(ctx context.Context, addr string, p Params) (map[string]float64, error) {
	c, err := dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	lat, err := pingPong(c, message(p.MsgSize), time.Now().Add(p.Duration), warmup, p.MaxOps, make([]time.Duration, 0, min(p.MaxOps, 1<<20)))
	if err != nil {
		return nil, fmt.Errorf("ping-pong: %w", err)
	}
	if len(lat) == 0 {
		return nil, errors.New("ping-pong: no round trip in time")
	}
	return map[string]float64{"p50_us": micros(Percentile(lat, 50)), "p99_us": micros(Percentile(lat, 99)), opsKey: float64(len(lat))}, nil
}

// runBulk writes BulkChunk-sized writes for Duration while reading the echo
// back on another goroutine, then half-closes and reads to EOF. The rate is
// the bytes that came back over the time until EOF.
func runBulk(ctx context.Context, addr string, p Params) (map[string]float64, error) {
	c, err := dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	start := time.Now()
	deadline := start.Add(p.Duration)
	if err := c.SetDeadline(deadline.Add(slack)); err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	werr := make(chan error, 1)
	go func() {
		buf := message(p.BulkChunk)
		var err error
		for n := 0; n < p.MaxOps && time.Now().Before(deadline); n++ {
			if _, err = c.Write(buf); err != nil {
				break
			}
		}
		if err == nil {
			err = c.CloseWrite()
		}
		werr <- err
	}()
	buf := make([]byte, 256<<10)
	var got int64
	var rerr error
	for {
		n, err := c.Read(buf)
		got += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			rerr = err
			break
		}
	}
	elapsed := time.Since(start)
	if err := errors.Join(<-werr, rerr); err != nil {
		return nil, fmt.Errorf("bulk: %w", err)
	}
	return map[string]float64{"mb_s": float64(got) / elapsed.Seconds() / 1e6, opsKey: float64(got) / 1e6}, nil
}

// runMany runs Conns ping-pong connections at once.
func runMany(ctx context.Context, addr string, p Params) (map[string]float64, error) {
	conns, err := dialMany(ctx, addr, p.Conns)
	defer closeAll(conns)
	if err != nil {
		return nil, err
	}
	return pingMany(ctx, conns, p, nil)
}

// dialMany opens n connections to addr, in up to 16 parallel dialers. On
// error it returns those it opened, for the caller to close.
func dialMany(ctx context.Context, addr string, n int) ([]*net.TCPConn, error) {
	conns := make([]*net.TCPConn, n)
	workers := min(n, 16)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n && ctx.Err() == nil; i += workers {
				c, err := dial(ctx, addr)
				if err != nil {
					errs[w] = fmt.Errorf("connection %d of %d: %w", i+1, n, err)
					return
				}
				conns[i] = c
			}
		})
	}
	wg.Wait()
	conns = slices.DeleteFunc(conns, func(c *net.TCPConn) bool { return c == nil })
	if err := errors.Join(append(errs, ctx.Err())...); err != nil {
		return conns, err
	}
	return conns, nil
}

// closeAll closes conns with a reset (SO_LINGER 0), leaving no TIME_WAIT.
func closeAll(conns []*net.TCPConn) {
	for _, c := range conns {
		_ = c.SetLinger(0)
		c.Close()
	}
}

// pingMany runs a ping-pong on every one of conns at once for p.Duration,
// after a warm-up; warmed, if set, runs between the two.
func pingMany(ctx context.Context, conns []*net.TCPConn, p Params, warmed func()) (map[string]float64, error) {
	stop := context.AfterFunc(ctx, func() {
		for _, c := range conns {
			c.SetDeadline(time.Unix(1, 0))
		}
	})
	defer stop()
	msg := message(p.MsgSize)
	// Each connection's warm-up happens before the clock starts, so that
	// every connection is in its loop when it does.
	warm := time.Now().Add(p.Duration)
	var wg sync.WaitGroup
	errs := make([]error, len(conns))
	for i, c := range conns {
		wg.Go(func() { _, errs[i] = pingPong(c, msg, warm, warmup/10, 0, nil) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	if warmed != nil {
		warmed()
	}
	lats := make([][]time.Duration, len(conns))
	start := time.Now()
	deadline := start.Add(p.Duration)
	capacity := max(4096/max(len(conns)/64, 1), 16)
	for i, c := range conns {
		wg.Go(func() {
			lats[i], errs[i] = pingPong(c, msg, deadline, 0, p.MaxOps, make([]time.Duration, 0, capacity))
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%d connections: %w", len(conns), err)
	}
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	return map[string]float64{
		"req_s":  float64(len(all)) / elapsed.Seconds(),
		"p99_us": micros(Percentile(all, 99)),
		opsKey:   float64(len(all)),
	}, nil
}

// runConnRate has Clients clients each connect, echo one message and close,
// over and over.
func runConnRate(ctx context.Context, addr string, p Params) (map[string]float64, error) {
	msg := message(p.MsgSize)
	start := time.Now()
	deadline := start.Add(p.Duration)
	counts := make([]int, p.Clients)
	errs := make([]error, p.Clients)
	var wg sync.WaitGroup
	for i := range p.Clients {
		wg.Go(func() {
			buf := make([]byte, len(msg))
			for n := 0; n < p.MaxOps && time.Now().Before(deadline) && ctx.Err() == nil; n++ {
				c, err := dial(ctx, addr)
				if err != nil {
					errs[i] = err
					return
				}
				_ = c.SetDeadline(deadline.Add(slack))
				err = roundTrip(c, msg, buf)
				c.Close()
				if err != nil {
					errs[i] = err
					return
				}
				counts[i]++
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("connection rate: %w", err)
	}
	total := 0
	for _, n := range counts {
		total += n
	}
	return map[string]float64{"conn_s": float64(total) / elapsed.Seconds(), opsKey: float64(total)}, nil
}

// udpTimeout is how long a UDP client waits for a reply before counting the
// datagram lost and sending the next.
const udpTimeout = 200 * time.Millisecond

// udpPingPong is pingPong for datagrams: a lost one costs udpTimeout and is
// counted, not fatal.
func udpPingPong(ctx context.Context, addr string, msg []byte, deadline time.Time, warm, max int, lat []time.Duration) ([]time.Duration, int, error) {
	d := net.Dialer{Timeout: slack}
	c, err := d.DialContext(ctx, "udp", addr)
	if err != nil {
		return lat, 0, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	buf := make([]byte, len(msg)+1)
	lost, replied := 0, false
	warmEnd := time.Now().Add(time.Until(deadline) / 5) // as in pingPong
	for n := 0; n < warm+max && ctx.Err() == nil; n++ {
		t := time.Now()
		if !t.Before(deadline) && len(lat) > 0 {
			break
		}
		if _, err := c.Write(msg); err != nil {
			return lat, lost, err
		}
		// The first reply may wait for a server that a loaded machine has
		// not scheduled yet: it gets the generous slack, later ones
		// udpTimeout. A run always measures at least one round trip.
		wait := udpTimeout
		if !replied {
			wait = slack
		}
		_ = c.SetReadDeadline(t.Add(wait))
		if _, err := c.Read(buf); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && ctx.Err() == nil {
				lost++
				continue
			}
			return lat, lost, err
		}
		if n >= warm || t.After(warmEnd) || !t.Before(deadline) {
			lat = append(lat, time.Since(t))
		}
		replied = true
	}
	return lat, lost, ctx.Err()
}

func runUDPPingPong(ctx context.Context, addr string, p Params) (map[string]float64, error) {
	lat, lost, err := udpPingPong(ctx, addr, message(p.MsgSize), time.Now().Add(p.Duration), warmup, p.MaxOps,
		make([]time.Duration, 0, min(p.MaxOps, 1<<20)))
	if err != nil {
		return nil, fmt.Errorf("UDP ping-pong: %w", err)
	}
	if len(lat) == 0 {
		return nil, fmt.Errorf("UDP ping-pong: no reply (%d lost)", lost)
	}
	return map[string]float64{"p50_us": micros(Percentile(lat, 50)), "p99_us": micros(Percentile(lat, 99)), "lost": float64(lost), opsKey: float64(len(lat))}, nil
}

func runUDPRate(ctx context.Context, addr string, p Params) (map[string]float64, error) {
	msg := message(p.MsgSize)
	start := time.Now()
	deadline := start.Add(p.Duration)
	counts := make([]int, p.Clients)
	losts := make([]int, p.Clients)
	errs := make([]error, p.Clients)
	var wg sync.WaitGroup
	for i := range p.Clients {
		wg.Go(func() {
			var lat []time.Duration
			lat, losts[i], errs[i] = udpPingPong(ctx, addr, msg, deadline, 0, p.MaxOps, make([]time.Duration, 0, 4096))
			counts[i] = len(lat)
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("UDP rate: %w", err)
	}
	total, lost := 0, 0
	for i := range counts {
		total += counts[i]
		lost += losts[i]
	}
	return map[string]float64{"dgram_s": float64(total) / elapsed.Seconds(), "lost": float64(lost), opsKey: float64(total)}, nil
}
