package plog

import (
	"fmt"
	"io"
	"log"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-hclog"

	"github.com/sockplay/sockplay/sdk/escape"
)

// Lines is a field value made of lines by design, such as a Go panic's stack
// or a Python traceback: Escaped keeps its line feeds and tabs (the text
// format prints it as hclog's indented block, each line after the record's
// starting with "  | "), and makes everything else that acts on a terminal
// visible (escape.Lines).
type Lines string

// Escaped returns l with everything logged through it made safe to print on
// a terminal and unable to forge a record: the message, the keys and every
// value but numbers, booleans, durations and times go through escape.String
// (so a client's ESC, CR, LF, C1 or bidi control, relayed by a plugin, prints
// as \x1b, \r, \n, \u009b, \u202e), a Lines value through escape.Lines. In
// the text format a record is then one line, but for a Lines value's block.
// The host's log is one; Named, With and the standard loggers stay escaped.
func Escaped(l hclog.Logger) hclog.Logger {
	if w, ok := l.(wrapped); ok {
		return wrapped{w.Logger, true}
	}
	return wrapped{l, true}
}

// escapeArgs returns args with keys and values escaped.
func escapeArgs(args []any) []any {
	if len(args) == 0 {
		return args
	}
	out := make([]any, len(args))
	for i, a := range args { // keys too: a relayed record's keys are the plugin's
		out[i] = escapeValue(a)
	}
	return out
}

func escapeValue(v any) any {
	switch v := v.(type) {
	case nil, bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64,
		float32, float64, time.Duration, time.Time, hclog.Hex, hclog.Octal, hclog.Binary, hclog.Quote:
		return v
	case string:
		return escape.String(v)
	case Lines:
		return escape.Lines(string(v))
	case hclog.Format:
		if f, ok := v[0].(string); ok && len(v) > 0 {
			return escape.String(fmt.Sprintf(f, v[1:]...))
		}
		return escape.String(fmt.Sprint([]any(v)...))
	case error:
		return escape.String(v.Error())
	case fmt.Stringer:
		return escape.String(v.String())
	}
	return escape.String(fmt.Sprint(v))
}

// StandardLogger returns a log.Logger whose lines go through l (hclog's own
// would write past the escaping).
func (l wrapped) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	if !l.escape {
		return l.Logger.StandardLogger(opts)
	}
	return log.New(l.StandardWriter(opts), "", 0)
}

// StandardWriter returns a writer whose lines are logged through l, at info,
// or at the level a "[WARN]"-style prefix gives when opts.InferLevels is set.
func (l wrapped) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	if !l.escape {
		return l.Logger.StandardWriter(opts)
	}
	if opts == nil {
		opts = &hclog.StandardLoggerOptions{}
	}
	return stdWriter{l: l, infer: opts.InferLevels}
}

type stdWriter struct {
	l     wrapped
	infer bool
}

// Write logs p as one record: the log package writes one entry a Write.
func (w stdWriter) Write(p []byte) (int, error) {
	line := strings.TrimSuffix(string(p), "\n")
	level := hclog.Info
	if w.infer {
		for _, lv := range []struct {
			prefix string
			level  hclog.Level
		}{{"[TRACE]", hclog.Trace}, {"[DEBUG]", hclog.Debug}, {"[INFO]", hclog.Info},
			{"[WARN]", hclog.Warn}, {"[ERROR]", hclog.Error}, {"[ERR]", hclog.Error}} {
			if rest, ok := strings.CutPrefix(line, lv.prefix); ok {
				line, level = strings.TrimSpace(rest), lv.level
				break
			}
		}
	}
	w.l.Log(level, line)
	return len(p), nil
}

// JSONOutput returns w for a logger writing JSON lines (the plugin's side of
// the contract): every non-ASCII code point that acts on a terminal (C1
// controls, bidi controls, line and paragraph separators: escape.Unsafe)
// is written as its JSON \uXXXX escape, so that a line read raw (the
// plugin's stderr on a terminal) is as safe as the host's log. encoding/json
// escapes the C0 controls but writes these as they are; in a JSON text they
// can only stand inside strings, where the escape means the same, so the
// host reads the same record.
func JSONOutput(w io.Writer) io.Writer { return jsonOutput{w} }

type jsonOutput struct{ w io.Writer }

func (j jsonOutput) Write(p []byte) (int, error) {
	s := string(p)
	if !strings.ContainsFunc(s, escape.Unsafe) {
		return j.w.Write(p)
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if escape.Unsafe(r) {
			fmt.Fprintf(&b, `\u%04x`, r)
		} else {
			b.WriteString(s[i : i+size]) // invalid bytes as they came
		}
		i += size
	}
	if _, err := io.WriteString(j.w, b.String()); err != nil {
		return 0, err
	}
	return len(p), nil
}
