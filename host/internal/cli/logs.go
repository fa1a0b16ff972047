package cli

import (
	"bytes"
	"fmt"
	"io"
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/sockplay/sockplay/sdk/protocol/plog"
)

// Log formats: text for people, json for machines (one object per line, the
// go-hclog JSON that plugins write too).
//
//	12:00:01.250 [INFO]  sockplay.echo: plugin restarted: pid=4242 attempt=1 took=52ms
//	{"@level":"info","@message":"plugin restarted","@module":"sockplay.echo","@timestamp":"2026-11-30T12:00:01.250131Z","attempt":1,"pid":4242,"took":"52ms"}
const (
	textTimeFormat = "15:04:05.000"
)

func newLogger(level, format string, withTime bool, w io.Writer) (hclog.Logger, error) {
	lv := hclog.LevelFromString(level)
	if lv == hclog.NoLevel {
		return nil, usagef("--log-level %q: want trace, debug, info, warn or error", level)
	}
	opts := &hclog.LoggerOptions{
		Name: "sockplay", Level: lv, Output: w, Color: hclog.ColorOff,
		DisableTime: !withTime, TimeFormat: textTimeFormat,
	}
	switch format {
	case "text":
	case "json":
		opts.JSONFormat, opts.TimeFormat = true, plog.TimeFormat
	default:
		return nil, usagef("--log-format %q: want text or json", format)
	}
	return plog.New(opts), nil
}

// gate holds what is written to it until Open, which writes it out and lets
// later writes through, or Discard, which drops it: a start that fails then
// prints its one error line and nothing of what the plugins logged on the
// way.
type gate struct {
	mu     sync.Mutex
	w      io.Writer
	buf    bytes.Buffer
	open   bool
	closed bool
}

func newGate(w io.Writer) *gate { return &gate{w: w} }

func (g *gate) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.open:
		return g.w.Write(p)
	case g.closed:
		return len(p), nil
	case g.buf.Len() > 1<<20:
		return len(p), nil // a start that logs this much is in trouble anyway
	}
	return g.buf.Write(p)
}

// Open writes out what was held and passes later writes through.
func (g *gate) Open() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open = true
	_, err := g.w.Write(g.buf.Bytes())
	g.buf.Reset()
	if err != nil {
		return fmt.Errorf("log: %w", err)
	}
	return nil
}

// Discard drops what was held and everything written later.
func (g *gate) Discard() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	g.buf.Reset()
}
