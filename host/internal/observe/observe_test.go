package observe

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sockplay/sockplay/sdk/protocol"
)

// fakeControl serves an Events stream of the given batches.
type fakeControl struct {
	protocol.ControlClient
	batches []*protocol.EventBatch
	err     error // of Events
}

type fakeStream struct {
	grpc.ClientStream
	batches []*protocol.EventBatch
}

func (f *fakeStream) Recv() (*protocol.EventBatch, error) {
	if len(f.batches) == 0 {
		return nil, io.EOF
	}
	b := f.batches[0]
	f.batches = f.batches[1:]
	return b, nil
}

func (f *fakeControl) Events(context.Context, *protocol.EventsRequest, ...grpc.CallOption) (grpc.ServerStreamingClient[protocol.EventBatch], error) {
	if f.err != nil {
		return nil, f.err
	}
	return &fakeStream{batches: f.batches}, nil
}

var tcpEvents = &protocol.Description{Transport: protocol.Transport_TRANSPORT_TCP, Features: []string{protocol.FeatureEvents}}

func ev(kind protocol.Event_Kind, conn uint64, f func(*protocol.Event)) *protocol.Event {
	e := &protocol.Event{Kind: kind, Conn: conn, TimeUnixNano: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano(),
		Peer: "127.0.0.2:40000", Local: "127.0.0.1:12348"}
	if f != nil {
		f(e)
	}
	return e
}

func closed(conn uint64, reason string, in, out uint64, d time.Duration) *protocol.Event {
	return ev(protocol.Event_CLOSED, conn, func(e *protocol.Event) {
		e.Reason, e.BytesIn, e.BytesOut, e.DurationNanos = reason, in, out, int64(d)
	})
}

func TestObserverCounts(t *testing.T) {
	o := New(Config{})
	ctl := &fakeControl{batches: []*protocol.EventBatch{
		{Events: []*protocol.Event{ev(protocol.Event_OPENED, 1, nil), ev(protocol.Event_OPENED, 2, nil), ev(protocol.Event_OPENED, 3, nil)}},
		{Events: []*protocol.Event{
			closed(1, "eof", 10, 20, 2*time.Millisecond),
			closed(2, "panic", 5, 0, 20*time.Millisecond),
			ev(protocol.Event_REFUSED, 0, func(e *protocol.Event) { e.Reason = "deny" }),
			ev(protocol.Event_TRACE, 3, func(e *protocol.Event) { e.Direction, e.Data = protocol.Direction_DIRECTION_IN, []byte("hi") }),
		}, Dropped: 7},
	}}
	o.Watch(context.Background(), "echo", 42, tcpEvents, ctl) // returns at the stream's EOF
	s := o.Stats("echo")
	// Connection 3 was open when the stream (the process) ended.
	want := Stats{Events: EventsOn, ConnsActive: 0, ConnsTotal: 3, BytesIn: 15, BytesOut: 20, Panics: 1, EventsDropped: 7,
		Closed: map[string]uint64{"eof": 1, "panic": 1, ReasonExited: 1}, Refused: map[string]uint64{"deny": 1}}
	if s.Events != want.Events || s.ConnsActive != want.ConnsActive || s.ConnsTotal != want.ConnsTotal || s.BytesIn != want.BytesIn ||
		s.BytesOut != want.BytesOut || s.Panics != want.Panics || s.EventsDropped != want.EventsDropped ||
		len(s.Closed) != 3 || s.Closed["eof"] != 1 || s.Closed["panic"] != 1 || s.Closed[ReasonExited] != 1 || s.Refused["deny"] != 1 {
		t.Errorf("stats %+v\nwant %+v", s, want)
	}
	evs, last := o.Events().Since(0, 0)
	kinds := []string{}
	for _, e := range evs {
		kinds = append(kinds, e.Kind+":"+e.Reason)
	}
	if got := strings.Join(kinds, " "); got != "open: open: open: close:eof close:panic refused:deny close:exited" || last != 7 {
		t.Errorf("events %s (last %d)", got, last)
	}
	tr, _ := o.Traces().Since(0, 0)
	if len(tr) != 1 || string(tr[0].Data) != "hi" || tr[0].Direction != "in" || tr[0].Conn != 3 || tr[0].Pid != 42 {
		t.Errorf("traces %+v", tr)
	}

	states := func() []PluginState { return []PluginState{{Name: "echo", Up: false, Restarts: 2}} }
	expected := `
# HELP sockplay_connections_total TCP connections that reached a plugin's handler.
# TYPE sockplay_connections_total counter
sockplay_connections_total{plugin="echo"} 3
# HELP sockplay_connections_active TCP connections open now.
# TYPE sockplay_connections_active gauge
sockplay_connections_active{plugin="echo"} 0
# HELP sockplay_received_bytes_total Bytes received from clients (TCP, counted by the kernel at each close, and UDP payloads).
# TYPE sockplay_received_bytes_total counter
sockplay_received_bytes_total{plugin="echo"} 15
# HELP sockplay_sent_bytes_total Bytes sent to clients (TCP bytes acknowledged, counted at each close, and UDP payloads).
# TYPE sockplay_sent_bytes_total counter
sockplay_sent_bytes_total{plugin="echo"} 20
# HELP sockplay_refused_total Clients the access rules refused, by reason.
# TYPE sockplay_refused_total counter
sockplay_refused_total{plugin="echo",reason="deny"} 1
# HELP sockplay_plugin_restarts_total Times the plugin's process was replaced after it died.
# TYPE sockplay_plugin_restarts_total counter
sockplay_plugin_restarts_total{plugin="echo"} 2
# HELP sockplay_plugin_up 1 while a process of the plugin serves, else 0.
# TYPE sockplay_plugin_up gauge
sockplay_plugin_up{plugin="echo"} 0
# HELP sockplay_events_dropped_total Events the plugin dropped because the host read them too slowly.
# TYPE sockplay_events_dropped_total counter
sockplay_events_dropped_total{plugin="echo"} 7
# HELP sockplay_panics_total Handler panics.
# TYPE sockplay_panics_total counter
sockplay_panics_total{plugin="echo"} 1
# HELP sockplay_datagrams_total UDP datagrams received (in) and sent (out).
# TYPE sockplay_datagrams_total counter
sockplay_datagrams_total{direction="in",plugin="echo"} 0
sockplay_datagrams_total{direction="out",plugin="echo"} 0
# HELP sockplay_connection_duration_seconds How long TCP connections were open.
# TYPE sockplay_connection_duration_seconds histogram
sockplay_connection_duration_seconds_bucket{plugin="echo",le="0.001"} 0
sockplay_connection_duration_seconds_bucket{plugin="echo",le="0.005"} 1
sockplay_connection_duration_seconds_bucket{plugin="echo",le="0.01"} 1
sockplay_connection_duration_seconds_bucket{plugin="echo",le="0.05"} 2
sockplay_connection_duration_seconds_bucket{plugin="echo",le="0.1"} 2
sockplay_connection_duration_seconds_bucket{plugin="echo",le="0.5"} 2
sockplay_connection_duration_seconds_bucket{plugin="echo",le="1"} 2
sockplay_connection_duration_seconds_bucket{plugin="echo",le="5"} 2
sockplay_connection_duration_seconds_bucket{plugin="echo",le="10"} 2
sockplay_connection_duration_seconds_bucket{plugin="echo",le="30"} 2
sockplay_connection_duration_seconds_bucket{plugin="echo",le="60"} 2
sockplay_connection_duration_seconds_bucket{plugin="echo",le="300"} 2
sockplay_connection_duration_seconds_bucket{plugin="echo",le="1800"} 2
sockplay_connection_duration_seconds_bucket{plugin="echo",le="+Inf"} 2
sockplay_connection_duration_seconds_sum{plugin="echo"} 0.022
sockplay_connection_duration_seconds_count{plugin="echo"} 2
`
	c := NewCollector(o, states)
	if err := testutil.CollectAndCompare(c, strings.NewReader(expected),
		"sockplay_connections_total", "sockplay_connections_active", "sockplay_received_bytes_total",
		"sockplay_sent_bytes_total", "sockplay_refused_total", "sockplay_plugin_restarts_total", "sockplay_plugin_up",
		"sockplay_events_dropped_total", "sockplay_panics_total", "sockplay_datagrams_total",
		"sockplay_connection_duration_seconds"); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

// A plugin without the feature, or that answers UNIMPLEMENTED, has "no
// events".
func TestObserverNoEvents(t *testing.T) {
	for _, tc := range []struct {
		name string
		desc *protocol.Description
		ctl  *fakeControl
	}{
		{"no feature", &protocol.Description{Transport: protocol.Transport_TRANSPORT_TCP}, &fakeControl{}},
		{"unimplemented", tcpEvents, &fakeControl{err: status.Error(codes.Unimplemented, "no")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := New(Config{})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); o.Watch(ctx, "py", 1, tc.desc, tc.ctl) }()
			deadline := time.Now().Add(5 * time.Second)
			for o.Stats("py").Events != EventsNone && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			cancel()
			<-done
			if got := o.Stats("py").Events; got != EventsNone {
				t.Errorf("events %q, want %q", got, EventsNone)
			}
		})
	}
}

func TestRing(t *testing.T) {
	r := NewRing[Event](3)
	if got, last := r.Since(0, 0); len(got) != 0 || last != 0 {
		t.Fatalf("empty ring: %v %d", got, last)
	}
	for i := range 5 {
		r.Add(Event{Detail: string(rune('a' + i))})
	}
	cases := []struct {
		since uint64
		limit int
		want  string
	}{{0, 0, "cde"}, {3, 0, "de"}, {1, 0, "cde"}, {5, 0, ""}, {0, 2, "de"}, {4, 0, "e"}}
	for _, c := range cases {
		got, last := r.Since(c.since, c.limit)
		s := ""
		for _, e := range got {
			s += e.Detail
		}
		if s != c.want || last != 5 {
			t.Errorf("Since(%d, %d) = %q, %d; want %q, 5", c.since, c.limit, s, last, c.want)
		}
	}
}

// The open connections kept per plugin are bounded (issue 27, kind 6): a
// plugin that dropped every CLOSED (it may, when the host reads slowly)
// leaves at most MaxOpen, the first opened forgotten first.
func TestObserverBoundsOpen(t *testing.T) {
	o := New(Config{})
	o.Add("echo", false)
	const n = 3 * MaxOpen
	for first := uint64(1); first <= n; first += 1024 {
		b := &protocol.EventBatch{}
		for c := first; c < first+1024; c++ {
			b.Events = append(b.Events, ev(protocol.Event_OPENED, c, nil))
		}
		o.batch("echo", 42, b)
	}
	open := o.Open("echo")
	if len(open) != MaxOpen || o.Stats("echo").ConnsActive != MaxOpen {
		t.Fatalf("%d open connections kept, %d counted active, after %d opened; want MaxOpen (%d)",
			len(open), o.Stats("echo").ConnsActive, n, MaxOpen)
	}
	// The last MaxOpen stay; a CLOSED of one closes it.
	o.batch("echo", 42, &protocol.EventBatch{Events: []*protocol.Event{closed(n, "eof", 1, 1, time.Millisecond)}})
	if got := len(o.Open("echo")); got != MaxOpen-1 {
		t.Fatalf("after a CLOSED of the last opened: %d kept", got)
	}
}
