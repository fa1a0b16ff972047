package supervisor

import (
	"bytes"
	"fmt"
	"strings"
	"sync"

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
	partial []byte   // a line not yet ended
	tail    []string // the last tailLines lines, JSON reduced to its message
	panic   []string // a panic's lines, from its first
	inPanic bool
}

const (
	tailLines  = 10
	panicLines = 2000
	maxLine    = 64 << 10
)

func newRelay(log hclog.Logger, stream string) *relay { return &relay{log: log, stream: stream} }

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
		r.log.Log(e.Level, e.Message, e.Fields...)
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
	r.log.Info(text, "stream", r.stream)
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
type goPluginLogger struct{ hclog.Logger }

func (l goPluginLogger) Named(string) hclog.Logger { return hclog.NewNullLogger() }

func (l goPluginLogger) Log(level hclog.Level, msg string, args ...any) {
	if msg != "plugin process exited" {
		l.Logger.Log(level, msg, args...)
	}
}
func (l goPluginLogger) Info(msg string, args ...any)  { l.Log(hclog.Info, msg, args...) }
func (l goPluginLogger) Error(msg string, args ...any) { l.Log(hclog.Error, msg, args...) }
