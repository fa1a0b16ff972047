// Package plog is the logging part of the plugin contract: a plugin writes
// go-hclog JSON lines on stderr, one object per line, and the host relays
// them into its own log under the plugin's name (SPEC.md, "Logging").
//
//	{"@level":"warn","@message":"slow client","@timestamp":"2026-11-30T04:00:00.123456Z","peer":"127.0.0.1:5000","wait":"250ms"}
//
// Durations are written as Go duration strings ("250ms"), in JSON as in text:
// hclog itself writes a time.Duration as a number of nanoseconds, which
// readers took for a float (2.5e+08). New returns a logger that does this;
// ParseLine reads such a line back.
package plog

import (
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sockplay/sockplay/sdk/escape"
)

// TimeFormat is the JSON timestamp format: RFC 3339 with microseconds.
const TimeFormat = hclog.TimeFormatJSON

// New returns hclog.New(opts) with every time.Duration argument written as
// its String form.
func New(opts *hclog.LoggerOptions) hclog.Logger {
	return Wrap(hclog.New(opts))
}

// Wrap returns l with every time.Duration argument written as its String
// form.
func Wrap(l hclog.Logger) hclog.Logger {
	if _, ok := l.(wrapped); ok {
		return l
	}
	return wrapped{Logger: l}
}

// wrapped is the logger New, Wrap and Escaped return: durations as strings
// and, with escape set, everything escaped (escaped.go).
type wrapped struct {
	hclog.Logger
	escape bool
}

// args returns args with durations as strings, escaped if l escapes.
func (l wrapped) args(args []any) []any {
	var out []any
	for i := 1; i < len(args); i += 2 {
		if d, ok := args[i].(time.Duration); ok {
			if out == nil {
				out = slices.Clone(args)
			}
			out[i] = d.String()
		}
	}
	if out == nil {
		out = args
	}
	if l.escape {
		return escapeArgs(out)
	}
	return out
}

func (l wrapped) msg(msg string) string {
	if l.escape {
		return escape.String(msg)
	}
	return msg
}

func (l wrapped) Log(level hclog.Level, msg string, args ...any) {
	l.Logger.Log(level, l.msg(msg), l.args(args)...)
}
func (l wrapped) Trace(msg string, args ...any) { l.Log(hclog.Trace, msg, args...) }
func (l wrapped) Debug(msg string, args ...any) { l.Log(hclog.Debug, msg, args...) }
func (l wrapped) Info(msg string, args ...any)  { l.Log(hclog.Info, msg, args...) }
func (l wrapped) Warn(msg string, args ...any)  { l.Log(hclog.Warn, msg, args...) }
func (l wrapped) Error(msg string, args ...any) { l.Log(hclog.Error, msg, args...) }
func (l wrapped) With(args ...any) hclog.Logger {
	return wrapped{l.Logger.With(l.args(args)...), l.escape}
}
func (l wrapped) Named(name string) hclog.Logger {
	return wrapped{l.Logger.Named(l.msg(name)), l.escape}
}
func (l wrapped) ResetNamed(name string) hclog.Logger {
	return wrapped{l.Logger.ResetNamed(l.msg(name)), l.escape}
}

// Entry is one parsed log line.
type Entry struct {
	Level   hclog.Level
	Message string
	Time    time.Time // zero when the line had none
	// Fields are the other key/value pairs, in key order.
	Fields []any
}

// ParseLine parses one hclog JSON line. It reports false for anything else
// (a plain line, a Go panic's output, JSON that is not hclog's).
func ParseLine(line []byte) (Entry, bool) {
	line = []byte(strings.TrimSpace(string(line)))
	if len(line) == 0 || line[0] != '{' {
		return Entry{}, false
	}
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		return Entry{}, false
	}
	lv, _ := m["@level"].(string)
	msg, ok := m["@message"].(string)
	if !ok || lv == "" {
		return Entry{}, false
	}
	e := Entry{Level: hclog.LevelFromString(lv), Message: msg}
	if e.Level == hclog.NoLevel {
		e.Level = hclog.Info
	}
	if ts, ok := m["@timestamp"].(string); ok {
		e.Time, _ = time.Parse(time.RFC3339Nano, ts)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		if !strings.HasPrefix(k, "@") {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := m[k]
		if f, ok := v.(float64); ok && f == float64(int64(f)) {
			v = int64(f) // JSON numbers are floats; keep integers whole
		}
		e.Fields = append(e.Fields, k, v)
	}
	return e, true
}
