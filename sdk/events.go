package sdk

import (
	"context"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sockplay/sockplay/sdk/protocol"
)

// EventsEnv, set to "off" in a plugin's environment (the host passes its
// own on), makes the SDK leave out the "events" and "trace" features: the
// plugin then records nothing about its connections and the host shows "no
// events" for it. It is a diagnostic, for measuring what the events cost
// (see BENCHMARKS.md); nothing else needs it.
const EventsEnv = "SOCKPLAY_EVENTS"

func eventsDisabled() bool { return strings.EqualFold(os.Getenv(EventsEnv), "off") }

// The bounds of the event stream (control.proto, Events). A handler never
// waits for the stream: an event that does not fit in the queue is dropped
// and counted.
const (
	// eventInterval is the least time between two batches: each event
	// reaches the host within it plus the time a send takes.
	eventInterval = 100 * time.Millisecond
	// maxQueuedEvents and maxQueuedBytes bound the queue (trace data
	// counts towards the bytes).
	maxQueuedEvents = 8192
	maxQueuedBytes  = 8 << 20
	// maxBatchEvents and maxBatchBytes bound one EventBatch message, well
	// under gRPC's default 4 MiB receive limit.
	maxBatchEvents = 1024
	maxBatchBytes  = 1 << 20
	// flushTimeout bounds how long Drain waits for the events of the
	// connections it closed to be sent.
	flushTimeout = time.Second
)

// eventQueue is where handlers' goroutines leave events for the Events
// stream. Pushing takes a mutex and never blocks on the stream.
type eventQueue struct {
	traceBytes atomic.Int64 // trace mode's budget per direction; 0: off

	mu       sync.Mutex
	buf      []*protocol.Event
	bytes    int
	dropped  uint64
	stream   uint64        // the generation of the stream that sends; a newer call takes over
	active   int           // streams open
	sent     chan struct{} // closed (and replaced) after each batch is sent
	inflight bool          // a batch was taken and is being sent
	notify   chan struct{} // capacity 1: there is something to send
	urgent   atomic.Bool   // send without waiting out eventInterval (Drain)

	// UDP counters since the last DATAGRAMS event.
	dgIn, dgOut, dgBytesIn, dgBytesOut atomic.Uint64
	dgDirty                            atomic.Bool
}

func newEventQueue() *eventQueue {
	return &eventQueue{notify: make(chan struct{}, 1), sent: make(chan struct{})}
}

func (q *eventQueue) poke() {
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

// push queues e, or counts it dropped when the queue is full.
func (q *eventQueue) push(e *protocol.Event) {
	n := len(e.Data) + 64
	q.mu.Lock()
	if len(q.buf) >= maxQueuedEvents || q.bytes+n > maxQueuedBytes {
		q.dropped++
		q.mu.Unlock()
		return
	}
	q.buf = append(q.buf, e)
	q.bytes += n
	first := len(q.buf) == 1
	q.mu.Unlock()
	if first {
		q.poke()
	}
}

// datagram counts one datagram in or out.
func (q *eventQueue) datagram(in bool, n int) {
	if in {
		q.dgIn.Add(1)
		q.dgBytesIn.Add(uint64(n))
	} else {
		q.dgOut.Add(1)
		q.dgBytesOut.Add(uint64(n))
	}
	if !q.dgDirty.Load() && q.dgDirty.CompareAndSwap(false, true) {
		q.poke()
	}
}

// refused reports a client the plugin's rules refused (feature "rules").
func (q *eventQueue) refused(peer string, local net.Addr, reason string) {
	q.push(&protocol.Event{Kind: protocol.Event_REFUSED, TimeUnixNano: time.Now().UnixNano(),
		Peer: peer, Local: addrString(local), Reason: reason})
}

// take removes up to one batch's worth of events, with the DATAGRAMS
// counters since the last take, and marks the batch in flight.
func (q *eventQueue) take() (*protocol.EventBatch, bool) {
	var events []*protocol.Event
	if q.dgDirty.Swap(false) {
		e := &protocol.Event{Kind: protocol.Event_DATAGRAMS, TimeUnixNano: time.Now().UnixNano(),
			DatagramsIn: q.dgIn.Swap(0), DatagramsOut: q.dgOut.Swap(0),
			BytesIn: q.dgBytesIn.Swap(0), BytesOut: q.dgBytesOut.Swap(0)}
		if e.DatagramsIn+e.DatagramsOut > 0 {
			events = append(events, e)
		}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	n, size := 0, 0
	for n < len(q.buf) && n < maxBatchEvents && (n == 0 || size+len(q.buf[n].Data) <= maxBatchBytes) {
		size += len(q.buf[n].Data) + 64
		n++
	}
	events = append(events, q.buf[:n]...)
	clear(q.buf[:n])
	q.buf = q.buf[n:]
	q.bytes -= size
	if len(q.buf) == 0 {
		q.buf, q.bytes = nil, 0 // let the backing array go
	}
	q.inflight = len(events) > 0
	return &protocol.EventBatch{Events: events, Dropped: q.dropped}, len(events) > 0 || q.dropped > 0
}

// done marks the batch in flight sent and wakes a waiting flush.
func (q *eventQueue) done() {
	q.mu.Lock()
	q.inflight = false
	close(q.sent)
	q.sent = make(chan struct{})
	more := len(q.buf) > 0
	q.mu.Unlock()
	if more {
		q.poke()
	}
}

// serve sends batches on stream until ctx is done, the stream fails or a
// newer stream takes over.
func (q *eventQueue) serve(ctx context.Context, stream grpc.ServerStreamingServer[protocol.EventBatch]) error {
	q.mu.Lock()
	q.stream++
	q.active++
	gen := q.stream
	q.mu.Unlock()
	defer func() {
		q.mu.Lock()
		q.active--
		q.mu.Unlock()
	}()
	// A first batch at once, even empty, tells the host the stream is open.
	q.mu.Lock()
	lastDropped := q.dropped
	q.mu.Unlock()
	if err := stream.Send(&protocol.EventBatch{Dropped: lastDropped}); err != nil {
		return err
	}
	q.poke() // what was queued before the stream opened goes next
	var last time.Time
	timer := time.NewTimer(0)
	<-timer.C
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-q.notify:
		}
		if wait := eventInterval - time.Since(last); wait > 0 && !q.urgent.Load() {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return nil
			case <-timer.C:
			}
		}
		q.mu.Lock()
		mine := q.stream == gen
		q.mu.Unlock()
		if !mine {
			q.poke() // the wake-up was the newer stream's
			return status.Error(codes.Aborted, "a newer Events stream took over")
		}
		batch, any := q.take()
		if any && (len(batch.Events) > 0 || batch.Dropped != lastDropped) {
			last = time.Now()
			if err := stream.Send(batch); err != nil {
				q.done()
				return err
			}
			lastDropped = batch.Dropped
		}
		q.done()
	}
}

// flush waits, at most until ctx is done, for what is queued now to be
// sent on an open stream. Without a stream it returns at once.
func (q *eventQueue) flush(ctx context.Context) {
	q.urgent.Store(true)
	defer q.urgent.Store(false)
	for ctx.Err() == nil {
		q.mu.Lock()
		idle := len(q.buf) == 0 && !q.inflight && !q.dgDirty.Load()
		streaming := q.active > 0
		sent := q.sent
		q.mu.Unlock()
		if idle || !streaming {
			return
		}
		q.poke()
		select {
		case <-sent:
		case <-ctx.Done():
		}
	}
}

// Events serves the event stream (feature "events"): see control.proto.
func (rt *runtime) Events(_ *protocol.EventsRequest, stream grpc.ServerStreamingServer[protocol.EventBatch]) error {
	if rt.events == nil {
		return status.Error(codes.Unimplemented, "events are off ("+EventsEnv+"=off)")
	}
	return rt.events.serve(stream.Context(), stream)
}

// connEvents is what a Server records about one connection when events are
// on; nil otherwise.
type connEvents struct {
	q           *eventQueue
	id          uint64
	peer, local string
	start       time.Time
	traced      *traceConn // in trace mode
}

// opened records a connection reaching its handler and returns the conn
// the handler gets: c itself, or in trace mode c wrapped to copy its first
// bytes.
func (q *eventQueue) opened(id uint64, c net.Conn) (*connEvents, net.Conn) {
	ce := &connEvents{q: q, id: id, peer: addrString(c.RemoteAddr()), local: addrString(c.LocalAddr()), start: time.Now()}
	q.push(&protocol.Event{Kind: protocol.Event_OPENED, Conn: id, TimeUnixNano: ce.start.UnixNano(),
		Peer: ce.peer, Local: ce.local})
	if n := q.traceBytes.Load(); n > 0 {
		ce.traced = newTraceConn(c, ce, n)
		return ce, ce.traced
	}
	return ce, c
}

// The reasons a connection closed (Event.reason of CLOSED).
const (
	reasonEOF      = "eof"
	reasonReset    = "reset"
	reasonReturned = "returned"
	reasonDrained  = "drained"
	reasonPanic    = "panic"
)

// closed records the end of the connection.
func (ce *connEvents) closed(reason string, in, out uint64) {
	ce.q.push(&protocol.Event{Kind: protocol.Event_CLOSED, Conn: ce.id, TimeUnixNano: ce.start.UnixNano(),
		Peer: ce.peer, Local: ce.local, DurationNanos: int64(time.Since(ce.start)), BytesIn: in, BytesOut: out,
		Reason: reason})
}

// trace records bytes of the connection in trace mode.
func (ce *connEvents) trace(dir protocol.Direction, offset uint64, data []byte) {
	ce.q.push(&protocol.Event{Kind: protocol.Event_TRACE, Conn: ce.id, TimeUnixNano: time.Now().UnixNano(),
		Peer: ce.peer, Local: ce.local, Direction: dir, Offset: offset, Data: append([]byte(nil), data...)})
}

// closeReason says why a connection whose handler returned (without a
// panic, before any drain) ended, from the kernel's TCP state at that
// moment: CLOSE_WAIT or LAST_ACK mean the client's FIN came first; CLOSE
// means the connection was reset (or, rarely, that the handler had shut its
// side and the client closed too); anything else means the handler returned
// first.
func closeReason(c net.Conn) string {
	st, ok := tcpState(c)
	switch {
	case !ok:
		return reasonReturned // the handler closed c itself
	case st == tcpCloseWait || st == tcpLastAck:
		return reasonEOF
	case st == tcpClose:
		return reasonReset
	}
	return reasonReturned
}

// finCounted says whether TCP_INFO's byte counts, read in TCP state st,
// include a FIN: the kernel counts each FIN as one byte of sequence space,
// tcpi_bytes_received the client's once received, tcpi_bytes_acked ours
// once acknowledged. eof says that the client's FIN was read, which tells
// an orderly close from a reset in state CLOSE.
func finCounted(st uint8, eof bool) (in, out uint64) {
	switch st {
	case tcpCloseWait, tcpLastAck, tcpClosing:
		return 1, 0
	case tcpFinWait2:
		return 0, 1
	case tcpTimeWait:
		return 1, 1
	case tcpClose:
		if eof {
			return 1, 1
		}
	}
	return 0, 0
}

// unwrapConn returns the socket under a trace wrapper.
func unwrapConn(c net.Conn) net.Conn {
	if t, ok := c.(*traceConn); ok {
		return t.Conn
	}
	return c
}
