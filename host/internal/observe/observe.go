// Package observe is the host's view of what its plugins' connections do:
// it reads each plugin process's Events stream (sdk/protocol/control.proto)
// and keeps, per plugin, counters (connections active and total, bytes in
// and out, refused by reason, panics, datagrams, events dropped, a
// histogram of connection durations), the connections open now, and two
// bounded rings: the recent events (connect, close with its reason,
// refused, crash, restart) and the trace records of plugins in trace mode.
//
// The status file, `sockplay status`, the admin endpoint's /metrics (see
// Collector), /api and web page, and `sockplay trace` all read from one
// Observer. It never blocks a plugin: it reads each stream as fast as the
// stream comes, and a reader of the rings that falls behind skips records.
package observe

import (
	"context"
	"errors"
	"io"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/golang-lru/v2/simplelru"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sockplay/sockplay/sdk/protocol"
)

// The values of Stats.Events.
const (
	EventsOn       = "on"
	EventsNone     = "no events" // the plugin lists no "events" feature, or answered UNIMPLEMENTED
	EventsStarting = "starting"  // no process has opened its stream yet
)

// Event kinds as the rings and the API name them.
const (
	KindOpen    = "open"    // a connection reached a handler
	KindClose   = "close"   // it ended: Reason says why
	KindRefused = "refused" // the rules refused a client
	KindExit    = "exit"    // a plugin process died (a crash, unless the host stopped it)
	KindRestart = "restart" // a new process took over
	KindFailed  = "failed"  // the plugin crash-looped and was given up on
)

// ReasonExited is the reason of a connection that was open when its
// process died: the plugin could not report how it ended.
const ReasonExited = "exited"

// Config configures an Observer.
type Config struct {
	Logger hclog.Logger
	// LogConns logs one line per closed or refused connection (xinetd's
	// log_on_success and log_on_failure).
	LogConns bool
	// EventsKept and TracesKept bound the rings (defaults 1000 and 2000).
	EventsKept, TracesKept int
	// StatsInterval is how often the Stats RPC is polled for the panics of
	// UDP plugins, which no CLOSED event reports (default 2 s).
	StatsInterval time.Duration
}

// Stats are one plugin's counters since the host started, over all its
// processes. They are part of `sockplay status --json`.
type Stats struct {
	// Events is "on", "no events" or "starting".
	Events string `json:"events"`
	// Trace is true when the plugin is in trace mode.
	Trace bool `json:"trace,omitempty"`
	// Connections open now, and ever opened (TCP).
	ConnsActive int64  `json:"conns_active"`
	ConnsTotal  uint64 `json:"conns_total"`
	// Closed counts the closed connections by reason (eof, reset,
	// returned, drained, panic, error, exited).
	Closed map[string]uint64 `json:"closed"`
	// Payload bytes received from and sent to clients: TCP counted at each
	// connection's close (the kernel's TCP_INFO), plus UDP datagrams.
	BytesIn  uint64 `json:"bytes_in"`
	BytesOut uint64 `json:"bytes_out"`
	// Refused counts the clients the plugin's rules refused, by reason.
	// (Not in the JSON: serve.PluginStatus's refused adds the host's.)
	Refused map[string]uint64 `json:"-"`
	// Panics counts handler panics.
	Panics uint64 `json:"panics"`
	// Datagrams received and sent (UDP).
	DatagramsIn  uint64 `json:"datagrams_in"`
	DatagramsOut uint64 `json:"datagrams_out"`
	// EventsDropped counts the events the plugin dropped because the host
	// read too slowly.
	EventsDropped uint64 `json:"events_dropped"`
}

// RefusedTotal is the sum of Refused.
func (s Stats) RefusedTotal() uint64 {
	var n uint64
	for _, v := range s.Refused {
		n += v
	}
	return n
}

// Event is one record of the recent-events ring.
type Event struct {
	Seq      uint64    `json:"seq"`
	Time     time.Time `json:"time"`
	Plugin   string    `json:"plugin"`
	Kind     string    `json:"kind"`
	Pid      int       `json:"pid,omitempty"`
	Conn     uint64    `json:"conn,omitempty"`
	Peer     string    `json:"peer,omitempty"`
	Local    string    `json:"local,omitempty"`
	Duration float64   `json:"duration_seconds,omitempty"`
	BytesIn  uint64    `json:"bytes_in,omitempty"`
	BytesOut uint64    `json:"bytes_out,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	Detail   string    `json:"detail,omitempty"`
}

// Trace is one record of the trace ring: bytes of one connection (or one
// datagram, Conn 0) in one direction, from Offset on.
type Trace struct {
	Seq       uint64    `json:"seq"`
	Time      time.Time `json:"time"`
	Plugin    string    `json:"plugin"`
	Pid       int       `json:"pid,omitempty"`
	Conn      uint64    `json:"conn"`
	Peer      string    `json:"peer"`
	Direction string    `json:"direction"` // "in" (from the client) or "out"
	Offset    uint64    `json:"offset"`
	Data      []byte    `json:"data"` // base64 in JSON
}

// Conn is an open connection.
type Conn struct {
	Plugin string    `json:"plugin"`
	Pid    int       `json:"pid"`
	Conn   uint64    `json:"conn"`
	Peer   string    `json:"peer"`
	Local  string    `json:"local"`
	Opened time.Time `json:"opened"`
	// In trace mode, the bytes traced so far each way (at most the trace
	// budget); otherwise 0: the kernel's counts arrive at the close.
	TracedIn  uint64 `json:"traced_in,omitempty"`
	TracedOut uint64 `json:"traced_out,omitempty"`
}

// DurationBuckets are the upper bounds, in seconds, of the connection
// duration histogram.
var DurationBuckets = []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800}

type connKey struct {
	pid int
	id  uint64
}

type plugin struct {
	stats     Stats
	open      *simplelru.LRU[connKey, *Conn] // at most MaxOpen, the first opened forgotten first
	hist      []uint64                       // per bucket, not cumulative; the last is +Inf
	histSum   float64
	histCount uint64
	dropped   map[int]uint64 // per pid: the plugin's running total
}

// Observer aggregates every plugin's events. Its methods are safe for
// concurrent use.
type Observer struct {
	cfg Config
	log hclog.Logger

	mu      sync.Mutex
	plugins map[string]*plugin
	events  *Ring[Event]
	traces  *Ring[Trace]
	version uint64        // bumped on every change
	changed chan struct{} // closed and replaced on every change
}

// New returns an Observer.
func New(cfg Config) *Observer {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.EventsKept <= 0 {
		cfg.EventsKept = 1000
	}
	if cfg.TracesKept <= 0 {
		cfg.TracesKept = 2000
	}
	if cfg.StatsInterval <= 0 {
		cfg.StatsInterval = 2 * time.Second
	}
	return &Observer{cfg: cfg, log: cfg.Logger, plugins: map[string]*plugin{},
		events: NewRing[Event](cfg.EventsKept), traces: NewRing[Trace](cfg.TracesKept), changed: make(chan struct{})}
}

// Add registers a plugin, so that it is known (and counted as zero) before
// its first event. trace says whether it is in trace mode.
func (o *Observer) Add(name string, trace bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.plugins[name]; !ok {
		o.plugins[name] = &plugin{stats: Stats{Events: EventsStarting, Trace: trace, Closed: map[string]uint64{},
			Refused: map[string]uint64{}}, open: newOpenTable(), hist: make([]uint64, len(DurationBuckets)+1),
			dropped: map[int]uint64{}}
	}
}

// Has reports whether plugin name is known.
func (o *Observer) Has(name string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	_, ok := o.plugins[name]
	return ok
}

// Names returns the known plugins' names, sorted.
func (o *Observer) Names() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Sorted(maps.Keys(o.plugins))
}

// Stats returns plugin name's counters (zero for an unknown one).
func (o *Observer) Stats(name string) Stats {
	o.mu.Lock()
	defer o.mu.Unlock()
	p, ok := o.plugins[name]
	if !ok {
		return Stats{}
	}
	s := p.stats
	s.Closed, s.Refused = maps.Clone(s.Closed), maps.Clone(s.Refused)
	return s
}

// MaxOpen bounds the open connections the observer keeps per plugin, from
// the plugin's OPENED and CLOSED events: a plugin that drops events when the
// host reads slowly (SPEC.md, Events) may drop a CLOSED, and clients must not
// grow the table for ever that way. Past it the connection opened first is
// forgotten, in constant time.
const MaxOpen = 1 << 16

func newOpenTable() *simplelru.LRU[connKey, *Conn] {
	t, _ := simplelru.NewLRU[connKey, *Conn](MaxOpen, nil)
	return t
}

// Open returns the open connections of plugin name ("" for every plugin),
// oldest first.
func (o *Observer) Open(name string) []Conn {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := []Conn{}
	for n, p := range o.plugins {
		if name != "" && n != name {
			continue
		}
		for _, c := range p.open.Values() {
			out = append(out, *c)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Opened.Equal(out[j].Opened) {
			return out[i].Opened.Before(out[j].Opened)
		}
		return out[i].Conn < out[j].Conn
	})
	return out
}

// Events is the ring of recent events.
func (o *Observer) Events() *Ring[Event] { return o.events }

// Traces is the ring of trace records.
func (o *Observer) Traces() *Ring[Trace] { return o.traces }

// Changed returns a channel that is closed at the next change of any
// counter, connection or ring, and the version it is current for.
func (o *Observer) Changed() (<-chan struct{}, uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.changed, o.version
}

// changedLocked wakes the waiters of Changed. o.mu is held.
func (o *Observer) changedLocked() {
	o.version++
	close(o.changed)
	o.changed = make(chan struct{})
}

// Lifecycle records a process's life event (KindExit, KindRestart,
// KindFailed) from the supervisor.
func (o *Observer) Lifecycle(name, kind string, pid int, detail string) {
	o.events.Add(Event{Time: time.Now().UTC(), Plugin: name, Kind: kind, Pid: pid, Detail: detail})
	o.mu.Lock()
	o.changedLocked()
	o.mu.Unlock()
}

// Watch reads the Events stream of one process of plugin name until ctx is
// done or the stream ends, and then counts the connections still open in
// that process as closed (ReasonExited). A process whose plugin does not
// list the "events" feature, or answers UNIMPLEMENTED, is marked "no
// events". UDP plugins' Stats are polled for panics meanwhile.
func (o *Observer) Watch(ctx context.Context, name string, pid int, desc *protocol.Description, ctl protocol.ControlClient) {
	o.Add(name, false)
	defer o.processGone(name, pid)
	if desc.GetTransport() == protocol.Transport_TRANSPORT_UDP {
		var wg sync.WaitGroup
		pctx, cancel := context.WithCancel(ctx)
		wg.Go(func() { o.pollPanics(pctx, name, ctl) })
		defer wg.Wait()
		defer cancel()
	}
	if !protocol.HasFeature(desc, protocol.FeatureEvents) {
		o.setEvents(name, EventsNone)
		<-ctx.Done()
		return
	}
	stream, err := ctl.Events(ctx, &protocol.EventsRequest{})
	if err != nil {
		o.streamEnded(ctx, name, pid, err)
		return
	}
	first := true
	for {
		b, err := stream.Recv()
		if err != nil {
			o.streamEnded(ctx, name, pid, err)
			return
		}
		if first {
			o.setEvents(name, EventsOn)
			first = false
		}
		o.batch(name, pid, b)
	}
}

func (o *Observer) streamEnded(ctx context.Context, name string, pid int, err error) {
	if status.Code(err) == codes.Unimplemented {
		o.setEvents(name, EventsNone)
		o.log.Named(name).Debug("no events: the plugin does not implement the Events stream", "pid", pid)
		<-ctx.Done()
		return
	}
	if ctx.Err() == nil && !errors.Is(err, io.EOF) {
		o.log.Named(name).Debug("events stream ended", "pid", pid, "error", err)
	}
}

func (o *Observer) setEvents(name, v string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if p := o.plugins[name]; p != nil && p.stats.Events != v {
		p.stats.Events = v
		o.changedLocked()
	}
}

// SetTrace marks plugin name in trace mode or not.
func (o *Observer) SetTrace(name string, on bool) {
	o.Add(name, on)
	o.mu.Lock()
	defer o.mu.Unlock()
	o.plugins[name].stats.Trace = on
}

// pollPanics adds the increase of the process's Stats panics until ctx is
// done: a UDP plugin's handler panics end no connection.
func (o *Observer) pollPanics(ctx context.Context, name string, ctl protocol.ControlClient) {
	var last uint64
	t := time.NewTicker(o.cfg.StatsInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		r, err := ctl.Stats(cctx, &protocol.StatsRequest{})
		cancel()
		if err != nil || r.GetPanics() <= last {
			continue
		}
		o.mu.Lock()
		if p := o.plugins[name]; p != nil {
			p.stats.Panics += r.GetPanics() - last
			o.changedLocked()
		}
		o.mu.Unlock()
		last = r.GetPanics()
	}
}

// processGone closes the connections a dead (or stopped) process left open.
func (o *Observer) processGone(name string, pid int) {
	now := time.Now().UTC()
	o.mu.Lock()
	p := o.plugins[name]
	var lost []*Conn
	for _, k := range p.open.Keys() {
		if k.pid == pid {
			c, _ := p.open.Peek(k)
			lost = append(lost, c)
			p.open.Remove(k)
			p.stats.ConnsActive--
			p.stats.Closed[ReasonExited]++
		}
	}
	if len(lost) > 0 {
		o.changedLocked()
	}
	o.mu.Unlock()
	for _, c := range lost {
		o.events.Add(Event{Time: now, Plugin: name, Kind: KindClose, Pid: pid, Conn: c.Conn, Peer: c.Peer,
			Local: c.Local, Duration: now.Sub(c.Opened).Seconds(), Reason: ReasonExited})
	}
}

// batch applies one EventBatch.
func (o *Observer) batch(name string, pid int, b *protocol.EventBatch) {
	var recs []Event
	var traces []Trace
	var logs []Event
	o.mu.Lock()
	p := o.plugins[name]
	if d := b.GetDropped(); d > p.dropped[pid] {
		p.stats.EventsDropped += d - p.dropped[pid]
		p.dropped[pid] = d
	}
	for _, e := range b.GetEvents() {
		t := time.Unix(0, e.GetTimeUnixNano()).UTC()
		key := connKey{pid, e.GetConn()}
		switch e.GetKind() {
		case protocol.Event_OPENED:
			p.stats.ConnsActive++
			p.stats.ConnsTotal++
			if p.open.Len() >= MaxOpen && !p.open.Contains(key) {
				// Full: the connection opened first is forgotten, most
				// likely one whose CLOSED the plugin dropped; if its CLOSED
				// comes, it counts as one whose OPENED was dropped.
				p.open.RemoveOldest()
				p.stats.ConnsActive--
			}
			p.open.Add(key, &Conn{Plugin: name, Pid: pid, Conn: e.GetConn(), Peer: e.GetPeer(), Local: e.GetLocal(), Opened: t})
			recs = append(recs, Event{Time: t, Plugin: name, Kind: KindOpen, Pid: pid, Conn: e.GetConn(),
				Peer: e.GetPeer(), Local: e.GetLocal()})
		case protocol.Event_CLOSED:
			if p.open.Remove(key) {
				p.stats.ConnsActive--
			} else {
				// Its OPENED was dropped: count it all the same.
				p.stats.ConnsTotal++
			}
			reason := e.GetReason()
			p.stats.Closed[reason]++
			if reason == "panic" {
				p.stats.Panics++
			}
			p.stats.BytesIn += e.GetBytesIn()
			p.stats.BytesOut += e.GetBytesOut()
			d := time.Duration(e.GetDurationNanos()).Seconds()
			p.hist[sort.SearchFloat64s(DurationBuckets, d)]++
			p.histSum += d
			p.histCount++
			ev := Event{Time: t.Add(time.Duration(e.GetDurationNanos())), Plugin: name, Kind: KindClose, Pid: pid,
				Conn: e.GetConn(), Peer: e.GetPeer(), Local: e.GetLocal(), Duration: d,
				BytesIn: e.GetBytesIn(), BytesOut: e.GetBytesOut(), Reason: reason}
			recs = append(recs, ev)
			if o.cfg.LogConns {
				logs = append(logs, ev)
			}
		case protocol.Event_REFUSED:
			p.stats.Refused[e.GetReason()]++
			ev := Event{Time: t, Plugin: name, Kind: KindRefused, Pid: pid, Peer: e.GetPeer(), Local: e.GetLocal(),
				Reason: e.GetReason()}
			recs = append(recs, ev)
			if o.cfg.LogConns {
				logs = append(logs, ev)
			}
		case protocol.Event_DATAGRAMS:
			p.stats.DatagramsIn += e.GetDatagramsIn()
			p.stats.DatagramsOut += e.GetDatagramsOut()
			p.stats.BytesIn += e.GetBytesIn()
			p.stats.BytesOut += e.GetBytesOut()
		case protocol.Event_TRACE:
			dir := "in"
			if e.GetDirection() == protocol.Direction_DIRECTION_OUT {
				dir = "out"
			}
			if c, _ := p.open.Peek(key); c != nil && e.GetConn() != 0 {
				end := e.GetOffset() + uint64(len(e.GetData()))
				if dir == "in" {
					c.TracedIn = max(c.TracedIn, end)
				} else {
					c.TracedOut = max(c.TracedOut, end)
				}
			}
			traces = append(traces, Trace{Time: t, Plugin: name, Pid: pid, Conn: e.GetConn(), Peer: e.GetPeer(),
				Direction: dir, Offset: e.GetOffset(), Data: e.GetData()})
		}
	}
	o.mu.Unlock()
	// The rings have their own locks; a reader woken by changedLocked
	// finds these records.
	o.events.Add(recs...)
	o.traces.Add(traces...)
	o.mu.Lock()
	o.changedLocked()
	o.mu.Unlock()
	o.logConns(logs)
}

// logConns writes one line per closed connection, as xinetd's
// log_on_success (HOST, DURATION) and log_on_failure (HOST) do. A refused
// client is not logged here: where it is refused (the host's listener or the
// SDK) logs it already, at most once per source per second, so that a flood
// of refusals is not a flood of lines, and twice would say it twice.
func (o *Observer) logConns(evs []Event) {
	for _, e := range evs {
		if e.Kind == KindRefused {
			continue
		}
		l := o.log.Named(e.Plugin)
		l.Info("connection closed", "conn", e.Conn, "peer", e.Peer,
			"duration", time.Duration(e.Duration*float64(time.Second)).Round(time.Microsecond).String(),
			"bytes_in", e.BytesIn, "bytes_out", e.BytesOut, "reason", e.Reason)
	}
}
