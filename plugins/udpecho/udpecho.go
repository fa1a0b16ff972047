package main

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sockplay/sockplay/sdk"
	"github.com/sockplay/sockplay/sdk/client"
	"github.com/sockplay/sockplay/sdk/protocol/plog"
)

// Version is the udpecho plugin's own version.
const Version = "1.0.0"

// DefaultPrefix is the tutorial's: it answers "hello <payload>".
const DefaultPrefix = "hello "

// Defaults of the reflection guards (see README.md, "Reflection").
const (
	// DefaultRate is how many datagrams a source address gets answered per
	// second; the burst is one second's worth.
	DefaultRate = "100/s"
	// DefaultMaxGrowth is how many bytes a reply may be larger than its
	// request: the tutorial's prefix, "hello ".
	DefaultMaxGrowth = len(DefaultPrefix)
)

// Plugin describes the udpecho plugin.
func Plugin() sdk.Plugin {
	return sdk.Plugin{
		Name:        "udpecho",
		Version:     Version,
		Summary:     "UDP echo: answers each datagram with a prefix and its payload",
		DefaultAddr: "127.0.0.1:12345",
		Options: []sdk.Option{
			{Name: "prefix", Default: DefaultPrefix, Help: "put before each reply; empty makes a plain RFC 862 echo"},
			{Name: "rate", Default: DefaultRate, Help: "datagrams answered per second per source address (0: no limit, which makes the echo a reflector)"},
			{Name: "burst", Default: "0", Help: "datagrams a source may send at once above its rate (0: one second's worth)"},
			{Name: "max-growth", Default: strconv.Itoa(DefaultMaxGrowth), Help: "bytes a reply may be larger than its request; the prefix must fit"},
			{Name: "loop-guard", Default: "true", Help: "drop a datagram that is our last reply to its sender coming back, which ends a loop with another echo service (false: only the rate limit slows one)"},
		},
		UDP:      newHandler,
		Commands: []client.Command{sendCommand()},
	}
}

func newHandler(cfg sdk.Config) (sdk.PacketHandler, error) {
	prefix := []byte(cfg.String("prefix"))
	rate, err := parseRate(cfg.String("rate"))
	if err != nil {
		return nil, fmt.Errorf("option udpecho.rate=%q: %w", cfg.String("rate"), err)
	}
	burst, err := cfg.Int("burst")
	if err != nil || burst < 0 {
		return nil, fmt.Errorf("option udpecho.burst=%q: want a whole number of datagrams", cfg.String("burst"))
	}
	growth, err := cfg.Int("max-growth")
	if err != nil || growth < 0 || growth > sdk.MaxDatagram {
		return nil, fmt.Errorf("option udpecho.max-growth=%q: want a number of bytes from 0 to %d", cfg.String("max-growth"), sdk.MaxDatagram)
	}
	if len(prefix) > growth {
		return nil, fmt.Errorf("option udpecho.prefix: %d bytes make every reply %d bytes larger than its request, "+
			"more than udpecho.max-growth=%d: a reply larger than its request makes the echo an amplifier; "+
			"shorten the prefix or set udpecho.max-growth=%d", len(prefix), len(prefix), growth, len(prefix))
	}
	guard, err := cfg.Bool("loop-guard")
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if !guard {
		log.Warn("udpecho.loop-guard=false: a loop with another echo service ends only if it outruns the rate limit")
	}
	var lim *limiter
	if rate > 0 {
		if burst == 0 {
			burst = max(1, int(rate))
		}
		lim = newLimiter(rate, burst)
		log.Info("per-source rate limit", "rate", rate, "burst", burst)
	} else {
		log.Warn("udpecho.rate=0: no per-source rate limit; anyone can use this echo to send traffic to a forged address")
	}
	return sdk.PacketHandlerFunc(func(ctx context.Context, pc net.PacketConn) {
		newEcho(prefix, lim, guard, log, portOf(pc.LocalAddr())).ServePackets(ctx, pc)
	}), nil
}

// echo is one socket's echo: the guards' state is the socket reader's own.
type echo struct {
	prefix []byte
	lim    *limiter   // nil: no rate limit
	loops  *loopGuard // nil: off
	own    int        // our port
	log    hclog.Logger
	now    func() time.Time

	// Each kind of warning is logged at most once a second, with a count of
	// the ones held back.
	limitedLog, portLog, loopLog, truncLog plog.Limiter

	reply []byte // one buffer for every reply: one goroutine reads the socket
}

func newEcho(prefix []byte, lim *limiter, guard bool, log hclog.Logger, own int) sdk.DatagramFunc {
	e := &echo{prefix: prefix, lim: lim, own: own, log: log, now: time.Now, reply: make([]byte, 0, 1<<16)}
	if guard {
		e.loops = newLoopGuard(len(prefix) == 0)
	}
	return e.answer
}

// answer returns the reply to one datagram, or nil for none.
func (e *echo) answer(_ context.Context, payload []byte, from net.Addr) []byte {
	now := e.now()
	if why := refusedPort(portOf(from), e.own); why != "" {
		if ok, n := e.portLog.Allow(now); ok {
			e.log.Warn("datagram from a service port dropped: an echo must not answer another service",
				"peer", from.String(), "reason", why, "suppressed", n)
		}
		return nil
	}
	if e.lim != nil && !e.lim.allow(now, sourceKey(from)) {
		if ok, n := e.limitedLog.Allow(now); ok {
			e.log.Warn("datagrams over the per-source rate limit dropped", "peer", from.String(), "suppressed", n)
		}
		return nil
	}
	sender := from.String()
	if e.loops != nil && e.loops.echoed(now, sender, payload) {
		if ok, n := e.loopLog.Allow(now); ok {
			e.log.Warn("datagram that echoes our last reply dropped: another echo service is answering us",
				"peer", sender, "suppressed", n)
		}
		return nil
	}
	e.reply = append(append(e.reply[:0], e.prefix...), payload...)
	if len(e.reply) > sdk.MaxDatagram {
		if ok, n := e.truncLog.Allow(now); ok {
			e.log.Warn("reply truncated to the largest datagram", "peer", sender, "payload", len(payload), "suppressed", n)
		}
		e.reply = e.reply[:sdk.MaxDatagram]
	}
	if e.loops != nil {
		e.loops.sent(now, sender, e.reply)
	}
	return e.reply
}

// parseRate accepts "100", "100/s", "6000/m".
func parseRate(s string) (float64, error) {
	s = strings.TrimSpace(s)
	per := time.Second
	if n, unit, ok := strings.Cut(s, "/"); ok {
		s = n
		switch unit {
		case "s":
		case "m":
			per = time.Minute
		default:
			return 0, fmt.Errorf("unit %q: want /s or /m", unit)
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("want a number of datagrams per second, such as 100 or 100/s")
	}
	return v / per.Seconds(), nil
}

func sourceKey(a net.Addr) string {
	if ua, ok := a.(*net.UDPAddr); ok {
		return ua.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}
