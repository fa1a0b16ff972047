package supervisor

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"

	"github.com/sockplay/sockplay/sdk/protocol/plog"
)

// relay turns what a plugin writes on one of its streams into the host's log
// under the plugin's name: its hclog JSON lines at their own level with their
// fields (and without their timestamp: the host's line has its own), plain
// lines at info with the stream named. A Go panic or fatal error ("panic: ",
// "fatal error: " and the goroutine dumps after it) is not logged line by
// line but kept whole, for the one log line of the process's death. The last
// lines are kept too, for that line and for start errors.
type relay struct {
	log    hclog.Logger
	stream string // "stderr" or "stdout"

	mu      sync.Mutex
	holding bool       // the process is starting: lines wait in held
	held    []heldLine // at most maxHeld, logged by release(true)
	partial []byte     // a line not yet ended
	tail    []string   // the last tailLines lines, JSON reduced to its message
	panic   []string   // a panic's lines, from its first
	inPanic bool
}

// heldLine is a line logged once the process has started.
type heldLine struct {
	level  hclog.Level
	msg    string
	fields []any
}

const (
	maxHeld    = 256
	tailLines  = 10
	panicLines = 2000
	maxLine    = 64 << 10
)

// newRelay returns a relay that holds what it is written until release: a
// process that fails to start is one line of the host's log, its start
// error, which quotes the last thing it wrote.
func newRelay(log hclog.Logger, stream string) *relay {
	return &relay{log: log, stream: stream, holding: true}
}

// release ends the hold: the lines held are logged (the process started) or
// dropped (its start error says why it did not).
func (r *relay) release(log bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.holding {
		return
	}
	r.holding = false
	if log {
		for _, l := range r.held {
			r.log.Log(l.level, l.msg, l.fields...)
		}
	}
	r.held = nil
}

// emit logs a line, or holds it while the process starts; r.mu is held.
func (r *relay) emit(level hclog.Level, msg string, fields ...any) {
	if !r.holding {
		r.log.Log(level, msg, fields...)
		return
	}
	if len(r.held) < maxHeld {
		r.held = append(r.held, heldLine{level, msg, fields})
	}
}

func (r *relay) Write(b []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(b)
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			r.partial = append(r.partial, b...)
			if len(r.partial) > maxLine { // a line with no end: log what there is
				r.line(r.partial)
				r.partial = r.partial[:0]
			}
			break
		}
		r.partial = append(r.partial, b[:i]...)
		r.line(r.partial)
		r.partial = r.partial[:0]
		b = b[i+1:]
	}
	return n, nil
}

// line handles one whole line; r.mu is held.
func (r *relay) line(b []byte) {
	text := strings.TrimRight(string(b), "\r")
	if strings.TrimSpace(text) == "" {
		return
	}
	if e, ok := plog.ParseLine(b); ok {
		r.keep(summary(e))
		r.emit(e.Level, e.Message, multiLine(e.Fields)...)
		return
	}
	if strings.HasPrefix(text, "panic: ") || strings.HasPrefix(text, "fatal error: ") {
		r.inPanic = true
	}
	if r.inPanic {
		if len(r.panic) < panicLines {
			// Tabs would print as \t in the log's multi-line value.
			r.panic = append(r.panic, strings.ReplaceAll(text, "\t", "    "))
		}
		r.keep(text)
		return
	}
	r.keep(text)
	r.emit(hclog.Info, text, "stream", r.stream)
}

// multiLineKeys name the fields the SDKs fill with text made of lines (a Go
// stack, a Python traceback, a panic's value): the host's log keeps their
// lines (plog.Lines); every other value is one line there.
var multiLineKeys = map[string]bool{"stack": true, "traceback": true, "panic": true}

// multiLine marks the values of multiLineKeys as plog.Lines.
func multiLine(fields []any) []any {
	for i := 0; i+1 < len(fields); i += 2 {
		if k, ok := fields[i].(string); ok && multiLineKeys[k] {
			if v, ok := fields[i+1].(string); ok {
				fields[i+1] = plog.Lines(v)
			}
		}
	}
	return fields
}

// summary is an entry's message, with its error field if it has one.
func summary(e plog.Entry) string {
	for i := 0; i+1 < len(e.Fields); i += 2 {
		if e.Fields[i] == "error" {
			return fmt.Sprintf("%s: %v", e.Message, e.Fields[i+1])
		}
	}
	return e.Message
}

func (r *relay) keep(line string) {
	if len(r.tail) == tailLines {
		r.tail = append(r.tail[:0], r.tail[1:]...)
	}
	r.tail = append(r.tail, line)
}

// Tail returns the last lines written (at most 10), JSON lines reduced to
// their message.
func (r *relay) Tail() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := append([]string(nil), r.tail...)
	if len(r.partial) > 0 {
		out = append(out, string(r.partial))
	}
	return out
}

// LastLine returns the last line written, or "".
func (r *relay) LastLine() string {
	t := r.Tail()
	if len(t) == 0 {
		return ""
	}
	return t[len(t)-1]
}

// Panic returns the whole of a Go panic or fatal error the process printed,
// or "".
func (r *relay) Panic() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.panic, "\n")
}

// goPluginLogger is the logger go-plugin gets: its own messages go to the
// plugin's logger, except the exit it reports (the supervisor logs each death
// once, with more); the child logger it names to relay the plugin's stderr is
// off, since relay does that.
// Once the host kills the process on purpose (Process.Kill), go-plugin's
// word that it "failed to exit gracefully" is not news: the logger goes quiet.
type goPluginLogger struct {
	hclog.Logger
	quiet *atomic.Bool
}

func (l goPluginLogger) Named(string) hclog.Logger { return hclog.NewNullLogger() }

func (l goPluginLogger) Log(level hclog.Level, msg string, args ...any) {
	if msg != "plugin process exited" && !l.quiet.Load() {
		l.Logger.Log(level, msg, args...)
	}
}
func (l goPluginLogger) Info(msg string, args ...any)  { l.Log(hclog.Info, msg, args...) }
func (l goPluginLogger) Warn(msg string, args ...any)  { l.Log(hclog.Warn, msg, args...) }
func (l goPluginLogger) Error(msg string, args ...any) { l.Log(hclog.Error, msg, args...) }
