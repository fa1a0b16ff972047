package sdk

import (
	"context"
	"io"
	"net"
	goruntime "runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/sockplay/sockplay/sdk/protocol"
)

// fakeStream is the server side of an Events stream, collecting batches.
type fakeStream struct {
	grpc.ServerStream
	ctx context.Context

	mu      sync.Mutex
	batches []*protocol.EventBatch
	sentAt  []time.Time
}

func (f *fakeStream) Context() context.Context { return f.ctx }

func (f *fakeStream) Send(b *protocol.EventBatch) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.batches = append(f.batches, b)
	f.sentAt = append(f.sentAt, time.Now())
	return nil
}

func (f *fakeStream) events() []*protocol.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*protocol.Event
	for _, b := range f.batches {
		out = append(out, b.Events...)
	}
	return out
}

// stream serves q on a fake stream until the test ends.
func stream(t *testing.T, q *eventQueue) *fakeStream {
	ctx, cancel := context.WithCancel(context.Background())
	f := &fakeStream{ctx: ctx}
	done := make(chan struct{})
	go func() { defer close(done); _ = q.serve(ctx, f) }()
	t.Cleanup(func() { cancel(); <-done })
	return f
}

// waitEvents waits until the stream carried events matching want (at most 5 s).
func waitEvents(t *testing.T, f *fakeStream, what string, want func([]*protocol.Event) bool) []*protocol.Event {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		evs := f.events()
		if want(evs) {
			return evs
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s in 5 s; got %v", what, evs)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func closedEvents(evs []*protocol.Event) []*protocol.Event {
	var out []*protocol.Event
	for _, e := range evs {
		if e.Kind == protocol.Event_CLOSED {
			out = append(out, e)
		}
	}
	return out
}

// serveEvents runs h under a Server with events on, on a loopback listener.
func serveEvents(t *testing.T, h Handler, traceBytes int64) (*Server, *eventQueue, *fakeStream, string) {
	t.Helper()
	q := newEventQueue()
	q.traceBytes.Store(traceBytes)
	srv := NewServer(h, nil)
	srv.events = q
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	})
	return srv, q, stream(t, q), ln.Addr().String()
}

func dial(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	return c.(*net.TCPConn)
}

var echoHandler = HandlerFunc(func(_ context.Context, c net.Conn) { _, _ = io.Copy(c, c) })

// Each connection's OPENED and CLOSED, with the kernel's byte counts and
// why it closed, table-driven over the ways a connection ends.
func TestEventsCloseReasons(t *testing.T) {
	payload := strings.Repeat("x", 3000)
	cases := []struct {
		name     string
		handler  Handler
		client   func(t *testing.T, c *net.TCPConn)
		reason   string
		in, out  uint64
		kernelOK bool // byte counts come from TCP_INFO (Linux)
	}{
		{"client closes first", echoHandler, func(t *testing.T, c *net.TCPConn) {
			_, _ = c.Write([]byte(payload))
			_ = c.CloseWrite()
			_, _ = io.Copy(io.Discard, c)
		}, reasonEOF, 3000, 3000, true},
		{"handler returns first", HandlerFunc(func(_ context.Context, c net.Conn) {
			_, _ = io.WriteString(c, "bye\n")
		}), func(t *testing.T, c *net.TCPConn) { _, _ = io.Copy(io.Discard, c) }, reasonReturned, 0, 4, true},
		{"handler panics", HandlerFunc(func(_ context.Context, c net.Conn) {
			buf := make([]byte, 5)
			_, _ = io.ReadFull(c, buf)
			panic("boom")
		}), func(t *testing.T, c *net.TCPConn) {
			_, _ = c.Write([]byte("hello"))
			_, _ = io.Copy(io.Discard, c)
		}, reasonPanic, 5, 0, true},
		{"client resets", HandlerFunc(func(_ context.Context, c net.Conn) {
			_, _ = io.Copy(io.Discard, c)
		}), func(t *testing.T, c *net.TCPConn) {
			_, _ = c.Write([]byte("abc"))
			time.Sleep(20 * time.Millisecond) // the plugin reads it; not an assertion
			_ = c.SetLinger(0)
		}, reasonReset, 3, 0, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, f, addr := serveEvents(t, tc.handler, 0)
			c := dial(t, addr)
			tc.client(t, c)
			c.Close()
			evs := waitEvents(t, f, "CLOSED", func(e []*protocol.Event) bool { return len(closedEvents(e)) == 1 })
			if len(evs) != 2 || evs[0].Kind != protocol.Event_OPENED {
				t.Fatalf("want OPENED then CLOSED, got %v", evs)
			}
			o, cl := evs[0], evs[1]
			if o.Conn != cl.Conn || o.Conn == 0 || o.Peer != c.LocalAddr().String() || o.Local != addr ||
				cl.Peer != o.Peer || cl.TimeUnixNano != o.TimeUnixNano || cl.DurationNanos <= 0 {
				t.Errorf("OPENED %v and CLOSED %v disagree", o, cl)
			}
			if cl.Reason != tc.reason {
				t.Errorf("reason %q, want %q", cl.Reason, tc.reason)
			}
			if goruntime.GOOS == "linux" && tc.kernelOK && (cl.BytesIn != tc.in || cl.BytesOut != tc.out) {
				t.Errorf("bytes in/out %d/%d, want %d/%d", cl.BytesIn, cl.BytesOut, tc.in, tc.out)
			}
		})
	}
}

func TestEventsDrained(t *testing.T) {
	started := make(chan struct{}, 1)
	srv, q, f, addr := serveEvents(t, HandlerFunc(func(ctx context.Context, c net.Conn) {
		started <- struct{}{}
		<-ctx.Done()
	}), 0)
	c := dial(t, addr)
	defer c.Close()
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("handler did not start")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
	q.flush(ctx)
	evs := closedEvents(f.events())
	if len(evs) != 1 || evs[0].Reason != reasonDrained {
		t.Fatalf("after Shutdown and flush: CLOSED events %v, want one drained", evs)
	}
}

// A handler never waits for the stream: with no stream reading, events
// beyond the queue's bound are dropped and counted.
func TestEventsBoundedDrops(t *testing.T) {
	q := newEventQueue()
	for i := 0; i < maxQueuedEvents+100; i++ {
		q.push(&protocol.Event{Kind: protocol.Event_OPENED, Conn: uint64(i + 1)})
	}
	f := stream(t, q)
	evs := waitEvents(t, f, "the queued events", func(e []*protocol.Event) bool { return len(e) == maxQueuedEvents })
	if evs[0].Conn != 1 || evs[len(evs)-1].Conn != maxQueuedEvents {
		t.Errorf("first %d, last %d: want the oldest kept", evs[0].Conn, evs[len(evs)-1].Conn)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range f.batches {
		if len(b.Events) > maxBatchEvents {
			t.Errorf("a batch of %d events, over %d", len(b.Events), maxBatchEvents)
		}
	}
	if last := f.batches[len(f.batches)-1]; last.Dropped != 100 {
		t.Errorf("dropped %d, want 100", last.Dropped)
	}
}

// Batches come at most every 100 ms, however fast events come.
func TestEventsBatchInterval(t *testing.T) {
	q := newEventQueue()
	f := stream(t, q)
	for i := range 30 {
		q.push(&protocol.Event{Kind: protocol.Event_OPENED, Conn: uint64(i + 1)})
		time.Sleep(10 * time.Millisecond)
	}
	waitEvents(t, f, "30 events", func(e []*protocol.Event) bool { return len(e) == 30 })
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.batches[0].Events) != 0 {
		t.Errorf("the first batch has events: %v", f.batches[0])
	}
	// After the first (empty) batch, which says the stream is open.
	for i := 2; i < len(f.sentAt); i++ {
		if gap := f.sentAt[i].Sub(f.sentAt[i-1]); gap < eventInterval-5*time.Millisecond {
			t.Errorf("batches %d and %d only %s apart", i-1, i, gap)
		}
	}
	if len(f.batches) > 10 {
		t.Errorf("%d batches for 300 ms of events", len(f.batches))
	}
}

// Trace mode copies the first N bytes of each direction, with offsets.
func TestEventsTrace(t *testing.T) {
	_, _, f, addr := serveEvents(t, echoHandler, 8)
	c := dial(t, addr)
	for _, s := range []string{"hello ", "world, more than eight"} {
		_, _ = c.Write([]byte(s))
		buf := make([]byte, len(s))
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
	}
	_ = c.CloseWrite()
	_, _ = io.Copy(io.Discard, c)
	c.Close()
	evs := waitEvents(t, f, "CLOSED", func(e []*protocol.Event) bool { return len(closedEvents(e)) == 1 })
	got := map[protocol.Direction]string{}
	for _, e := range evs {
		if e.Kind == protocol.Event_TRACE {
			if uint64(len(got[e.Direction])) != e.Offset {
				t.Errorf("%v: offset %d after %q", e.Direction, e.Offset, got[e.Direction])
			}
			got[e.Direction] += string(e.Data)
		}
	}
	if got[protocol.Direction_DIRECTION_IN] != "hello wo" || got[protocol.Direction_DIRECTION_OUT] != "hello wo" {
		t.Errorf("traced %q", got)
	}
}

// UDP: datagrams and bytes in and out, and the start of each datagram in
// trace mode.
func TestEventsDatagrams(t *testing.T) {
	q := newEventQueue()
	q.traceBytes.Store(4)
	srv := NewPacketServer(DatagramFunc(func(_ context.Context, p []byte, _ net.Addr) []byte {
		return append([]byte("re:"), p...)
	}), nil)
	srv.events = q
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(pc) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-served
	})
	f := stream(t, q)
	c, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	for range 5 {
		_, _ = c.Write([]byte("ping!"))
		buf := make([]byte, 64)
		if _, err := c.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	var in, out, bin, bout uint64
	var traces int
	waitEvents(t, f, "5 datagrams each way", func(evs []*protocol.Event) bool {
		in, out, bin, bout, traces = 0, 0, 0, 0, 0
		for _, e := range evs {
			switch e.Kind {
			case protocol.Event_DATAGRAMS:
				in, out, bin, bout = in+e.DatagramsIn, out+e.DatagramsOut, bin+e.BytesIn, bout+e.BytesOut
			case protocol.Event_TRACE:
				traces++
				if len(e.Data) != 4 || e.Peer != c.LocalAddr().String() {
					t.Errorf("trace %v", e)
				}
			}
		}
		return in == 5 && out == 5 && traces == 10
	})
	if bin != 25 || bout != 40 {
		t.Errorf("bytes in/out %d/%d, want 25/40", bin, bout)
	}
}

// A second stream takes over from the first.
func TestEventsSecondStreamTakesOver(t *testing.T) {
	q := newEventQueue()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := &fakeStream{ctx: ctx}
	res := make(chan error, 1)
	go func() { res <- q.serve(ctx, first) }()
	waitActive := func(n int) {
		deadline := time.Now().Add(5 * time.Second)
		for {
			q.mu.Lock()
			ok := q.stream == uint64(n)
			q.mu.Unlock()
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("stream %d did not start", n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitActive(1)
	second := stream(t, q)
	waitActive(2)
	q.push(&protocol.Event{Kind: protocol.Event_OPENED, Conn: 1})
	waitEvents(t, second, "the event on the second stream", func(e []*protocol.Event) bool { return len(e) == 1 })
	select {
	case err := <-res:
		if err == nil {
			t.Error("the first stream ended without an error")
		}
	case <-time.After(5 * time.Second):
		t.Error("the first stream did not end")
	}
	if len(first.events()) != 0 {
		t.Errorf("the first stream got %v", first.events())
	}
}
