package main

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/sockplay/sockplay/sdk"
)

// Version is the udpecho plugin's own version.
const Version = "1.0.0"

// DefaultPrefix is the tutorial's: it answers "hello <payload>".
const DefaultPrefix = "hello "

// Plugin describes the udpecho plugin.
func Plugin() sdk.Plugin {
	return sdk.Plugin{
		Name:        "udpecho",
		Version:     Version,
		Summary:     "UDP echo: answers each datagram with a prefix and its payload",
		Transport:   sdk.UDP,
		DefaultAddr: "127.0.0.1:12345",
		Options: []sdk.Option{
			{Name: "prefix", Default: DefaultPrefix, Help: "put before each reply; empty makes a plain RFC 862 echo"},
			{Name: "rate", Default: "0", Help: "datagrams answered per second per source address (0: no limit)"},
			{Name: "burst", Default: "0", Help: "datagrams a source may send at once above its rate (0: one second's worth)"},
		},
		UDP:      newHandler,
		Commands: []sdk.Command{sendCommand()},
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
	var lim *limiter
	if rate > 0 {
		if burst == 0 {
			burst = max(1, int(rate))
		}
		lim = newLimiter(rate, burst, time.Now)
		cfg.Logger.Info("per-source rate limit", "rate", rate, "burst", burst)
	}
	log := cfg.Logger
	// One goroutine reads the socket and calls this function, so one reply
	// buffer serves every datagram.
	reply := make([]byte, 0, 1<<16)
	return sdk.DatagramFunc(func(_ context.Context, payload []byte, from net.Addr) []byte {
		if lim != nil && !lim.allow(sourceKey(from)) {
			return nil
		}
		reply = append(append(reply[:0], prefix...), payload...)
		if len(reply) > sdk.MaxDatagram {
			log.Warn("reply truncated to the largest datagram", "peer", from.String(), "payload", len(payload))
			reply = reply[:sdk.MaxDatagram]
		}
		return reply
	}), nil
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
