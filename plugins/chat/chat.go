package main

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/sockplay/sockplay/sdk"
	"github.com/sockplay/sockplay/sdk/client"
)

// Version is the chat plugin's own version.
const Version = "1.0.0"

// Plugin describes the chat plugin.
func Plugin() sdk.Plugin {
	def := DefaultConfig()
	return sdk.Plugin{
		Name:        "chat",
		Version:     Version,
		Summary:     "a multi-client chat room: every line goes to everyone; /nick, /who, /help, /quit",
		DefaultAddr: "127.0.0.1:12346",
		Options: []sdk.Option{
			{Name: "room", Default: def.Room, Help: "the room's name, shown in the welcome"},
			{Name: "history", Default: fmt.Sprint(def.History), Help: "messages said before a newcomer joined that it is shown (0: none)"},
			{Name: "maxline", Default: fmt.Sprint(def.MaxLine), Help: "longest line accepted, in bytes; longer ones are refused with a notice"},
			{Name: "sendq", Default: fmt.Sprint(def.SendQ), Help: "bytes of output waiting for one client: senders wait while any client has half of it; over all of it the client is disconnected"},
			{Name: "stall", Default: def.Stall.String(), Help: "a client that takes no output, or holds the senders back, for this long is disconnected"},
			{Name: "floodrate", Default: fmt.Sprint(def.FloodRate), Help: "lines per second the room reads from one client once its burst is spent (0: no limit)"},
			{Name: "floodburst", Default: fmt.Sprint(def.FloodBurst), Help: "lines one client may send at once before floodrate applies"},
			{Name: "linger", Default: def.Linger.String(), Help: "least time between two writes to one client; lines gather meanwhile, unless 64 KiB wait (0: write at once)"},
			{Name: "sndbuf", Default: fmt.Sprint(def.SndBuf), Help: "kernel send buffer per client, in bytes (0: the kernel's autotuning)"},
			{Name: "linewait", Default: def.LineWait.String(), Help: "pause that ends a line sent without a newline (0: the end of each read does)"},
		},
		TCP: func(cfg sdk.Config) (sdk.Handler, error) {
			c, err := configFrom(cfg)
			if err != nil {
				return nil, err
			}
			return newRoom(c, cfg.Logger), nil
		},
		Commands: []client.Command{connectCommand()},
	}
}

// Config is the room's configuration.
type Config struct {
	Room    string
	History int
	MaxLine int
	// SendQ is each client's budget of queued output, in bytes (a line
	// counts its length plus lineOverhead). See README.md, "Flow control".
	SendQ int
	Stall time.Duration
	// FloodRate (lines per second, 0 for no limit) and FloodBurst (lines)
	// are each client's token bucket.
	FloodRate  float64
	FloodBurst int
	SndBuf     int
	Linger     time.Duration
	LineWait   time.Duration
}

// DefaultConfig returns the defaults the plugin declares.
func DefaultConfig() Config {
	return Config{
		Room:       "lobby",
		History:    0,
		MaxLine:    4096,
		SendQ:      1 << 20,
		Stall:      10 * time.Second,
		FloodRate:  200,
		FloodBurst: 100,
		SndBuf:     64 << 10,
		Linger:     10 * time.Millisecond,
		LineWait:   20 * time.Millisecond,
	}
}

// Validate reports the first setting out of range.
func (c Config) Validate() error {
	switch {
	case c.Room == "" || len(c.Room) > 64:
		return errors.New("option chat.room: want 1 to 64 bytes")
	case c.History < 0 || c.History > 10000:
		return fmt.Errorf("option chat.history=%d: want 0 to 10000", c.History)
	case c.MaxLine < 64 || c.MaxLine > 1<<20:
		return fmt.Errorf("option chat.maxline=%d: want 64 to 1048576", c.MaxLine)
	case c.SendQ < 16<<10 || c.SendQ > 1<<30:
		return fmt.Errorf("option chat.sendq=%d: want 16384 to 1073741824", c.SendQ)
	case c.SendQ < 4*(c.MaxLine+lineOverhead+64):
		// Half of it must hold a line of every kind with room to spare.
		return fmt.Errorf("option chat.sendq=%d: want at least 4 times chat.maxline=%d plus 384", c.SendQ, c.MaxLine)
	case c.Stall < 10*time.Millisecond || c.Stall > time.Hour:
		return fmt.Errorf("option chat.stall=%s: want 10ms to 1h", c.Stall)
	case c.FloodRate < 0 || c.FloodRate > 1e6 || math.IsNaN(c.FloodRate):
		return fmt.Errorf("option chat.floodrate=%g: want 0 (no limit) to 1000000 lines per second", c.FloodRate)
	case c.FloodBurst < 1 || c.FloodBurst > 1e6:
		return fmt.Errorf("option chat.floodburst=%d: want 1 to 1000000 lines", c.FloodBurst)
	case c.SndBuf < 0 || c.SndBuf > 64<<20:
		return fmt.Errorf("option chat.sndbuf=%d: want 0 to 67108864", c.SndBuf)
	case c.Linger < 0 || c.Linger > time.Second:
		return fmt.Errorf("option chat.linger=%s: want 0 to 1s", c.Linger)
	case c.LineWait < 0 || c.LineWait > 5*time.Second:
		return fmt.Errorf("option chat.linewait=%s: want 0 to 5s", c.LineWait)
	}
	return nil
}

func configFrom(cfg sdk.Config) (Config, error) {
	var c Config
	var err error
	c.Room, _ = Neutralise([]byte(cfg.String("room")))
	if c.History, err = cfg.Int("history"); err != nil {
		return c, err
	}
	if c.MaxLine, err = cfg.Int("maxline"); err != nil {
		return c, err
	}
	if c.SendQ, err = cfg.Int("sendq"); err != nil {
		return c, err
	}
	if c.Stall, err = cfg.Duration("stall"); err != nil {
		return c, err
	}
	if c.FloodRate, err = strconv.ParseFloat(strings.TrimSpace(cfg.String("floodrate")), 64); err != nil {
		return c, fmt.Errorf("option chat.floodrate=%q: want a number of lines per second", cfg.String("floodrate"))
	}
	if c.FloodBurst, err = cfg.Int("floodburst"); err != nil {
		return c, err
	}
	if c.SndBuf, err = cfg.Int("sndbuf"); err != nil {
		return c, err
	}
	if c.Linger, err = cfg.Duration("linger"); err != nil {
		return c, err
	}
	if c.LineWait, err = cfg.Duration("linewait"); err != nil {
		return c, err
	}
	return c, c.Validate()
}
