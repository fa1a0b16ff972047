package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	stdlog "log"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/grpclog"

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
	// Escaped: what plugins relay (their log records, stdout and stderr)
	// and what the host logs of theirs (errors, events) can carry a
	// client's bytes: a record is one line, and nothing in it acts on the
	// operator's terminal.
	return plog.Escaped(plog.New(opts)), nil
}

// captureStdLogs sends what the standard library's log package and gRPC's
// log (which write to stderr themselves, unescaped and blocking) to log, and
// returns what undoes it.
func captureStdLogs(log hclog.Logger) (undo func()) {
	w := log.Named("stdlog").StandardWriter(&hclog.StandardLoggerOptions{InferLevels: true})
	out, flags, prefix := stdlog.Writer(), stdlog.Flags(), stdlog.Prefix()
	stdlog.SetOutput(w)
	stdlog.SetFlags(0)
	stdlog.SetPrefix("")
	grpclog.SetLoggerV2(grpclog.NewLoggerV2(io.Discard, io.Discard, w)) // errors only, as gRPC's default
	return func() {
		stdlog.SetOutput(out)
		stdlog.SetFlags(flags)
		stdlog.SetPrefix(prefix)
	}
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

// logFlushTimeout bounds how long a command waits at exit for its log to be
// written out.
const logFlushTimeout = 2 * time.Second

// logQueueBytes bounds what a stalled log output holds back before lines are
// dropped: well over a pipe's 64 KiB, so that a reader that only pauses
// loses nothing.
const logQueueBytes = 1 << 20

// nonBlocking is the host's log output: writes are queued and written to w
// by a goroutine of its own, so that no goroutine that logs (a supervisor
// logging a plugin's death before it restarts it, a stop logging
// "stopping") ever waits for w. When w's reader stalls (a full pipe, a
// terminal in scroll-back mode, a stuck log shipper; case 14), the queue
// fills to logQueueBytes, then each write is dropped and counted; once w
// takes writes again, reportDropped is called with the count, from that
// goroutine. A write is one log record (hclog writes each record whole).
type nonBlocking struct {
	w io.Writer

	mu       sync.Mutex
	queue    [][]byte
	size     int
	dropped  uint64 // since the last report
	reported func(n uint64)
	closed   bool
	busy     bool          // run is writing a batch out
	wake     chan struct{} // a token: the queue has something
	idle     chan struct{} // closed and replaced each time the queue is written out
	done     chan struct{} // closed when run has returned
}

// reportRoom is the room the queue must have for the line that reports the
// drops, so that it is not dropped itself.
const reportRoom = 4 << 10

func newNonBlocking(w io.Writer) *nonBlocking {
	nb := &nonBlocking{w: w, wake: make(chan struct{}, 1), idle: make(chan struct{}), done: make(chan struct{})}
	go nb.run()
	return nb
}

// onDropped sets what reports the lines dropped (a log line of the host's:
// it is queued like any other).
func (nb *nonBlocking) onDropped(f func(n uint64)) {
	nb.mu.Lock()
	nb.reported = f
	nb.mu.Unlock()
}

func (nb *nonBlocking) Write(p []byte) (int, error) {
	nb.mu.Lock()
	defer nb.mu.Unlock()
	if nb.closed || nb.size+len(p) > logQueueBytes {
		nb.dropped++
		return len(p), nil
	}
	nb.queue = append(nb.queue, bytes.Clone(p))
	nb.size += len(p)
	select {
	case nb.wake <- struct{}{}:
	default:
	}
	return len(p), nil
}

// run writes the queue out until Close.
func (nb *nonBlocking) run() {
	defer close(nb.done)
	for {
		nb.mu.Lock()
		batch := nb.queue
		nb.queue, nb.size = nil, 0
		nb.busy = len(batch) > 0
		closed := nb.closed
		nb.mu.Unlock()
		wrote := false
		for _, b := range batch {
			if _, err := nb.w.Write(b); err == nil {
				wrote = true
			} else {
				nb.mu.Lock()
				nb.dropped++ // the reader is gone
				nb.mu.Unlock()
			}
		}
		nb.mu.Lock()
		n, report := nb.dropped, nb.reported
		if wrote && n > 0 && report != nil && nb.size+reportRoom <= logQueueBytes {
			nb.dropped = 0 // writing works again: say what was lost
		} else {
			report = nil
		}
		if len(nb.queue) == 0 && report == nil {
			nb.busy = false
			close(nb.idle) // Close waits for this
			nb.idle = make(chan struct{})
		}
		nb.mu.Unlock()
		switch {
		case report != nil:
			report(n) // queues a line: written on the next round
		case closed:
			return
		default:
			<-nb.wake
		}
	}
}

// Close writes out what is queued, waiting at most timeout (a reader that
// never reads again must not keep the host from exiting), and drops what
// comes later.
func (nb *nonBlocking) Close(timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	nb.mu.Lock()
	idle := nb.idle
	empty := len(nb.queue) == 0 && !nb.busy
	nb.mu.Unlock()
	if !empty {
		select {
		case <-idle:
		case <-ctx.Done():
		}
	}
	nb.mu.Lock()
	nb.closed = true
	nb.mu.Unlock()
	select {
	case nb.wake <- struct{}{}:
	default:
	}
	select {
	case <-nb.done:
	case <-ctx.Done(): // run is stuck in a write that never returns
	}
}
