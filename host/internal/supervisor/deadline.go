package supervisor

import (
	"context"
	"time"

	"google.golang.org/grpc"

	"github.com/sockplay/sockplay/sdk/protocol"
)

// Every call the host makes to a plugin has a deadline, so that a plugin
// that is alive but not answering (stopped, deadlocked) never holds up the
// host: a supervisor's health check, a shutdown, a status.
const (
	// controlTimeout is the deadline of a control call whose context has
	// none.
	controlTimeout = 10 * time.Second
	// drainGrace is how much longer than the drain timeout the Drain call
	// may take.
	drainGrace = time.Second
	// stopTimeout bounds go-plugin's graceful stop (its own wait for the
	// process to exit is 2 s); past it the process group is killed.
	stopTimeout = 3 * time.Second
	// killWait bounds the waits after a kill: for go-plugin to reap the
	// process, and for the handoff socket's end of file.
	killWait = 2 * time.Second
)

// boundClient is the Control client every Process hands out: a call whose
// context has no deadline gets timeout, and every call, the Events stream
// included, ends when the process does (life).
type boundClient struct {
	protocol.ControlClient
	life    context.Context
	timeout time.Duration
}

var _ protocol.ControlClient = (*boundClient)(nil)

// bound returns ctx with the client's deadline if it has none, cancelled too
// when the process ends.
func (c *boundClient) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	var cancel context.CancelFunc
	if _, ok := ctx.Deadline(); ok {
		ctx, cancel = context.WithCancel(ctx)
	} else {
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
	}
	stop := context.AfterFunc(c.life, cancel)
	return ctx, func() { stop(); cancel() }
}

func (c *boundClient) Describe(ctx context.Context, in *protocol.DescribeRequest, opts ...grpc.CallOption) (*protocol.Description, error) {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	return c.ControlClient.Describe(ctx, in, opts...)
}

func (c *boundClient) Configure(ctx context.Context, in *protocol.ConfigureRequest, opts ...grpc.CallOption) (*protocol.ConfigureResponse, error) {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	return c.ControlClient.Configure(ctx, in, opts...)
}

func (c *boundClient) Health(ctx context.Context, in *protocol.HealthRequest, opts ...grpc.CallOption) (*protocol.HealthResponse, error) {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	return c.ControlClient.Health(ctx, in, opts...)
}

func (c *boundClient) Stats(ctx context.Context, in *protocol.StatsRequest, opts ...grpc.CallOption) (*protocol.StatsResponse, error) {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	return c.ControlClient.Stats(ctx, in, opts...)
}

func (c *boundClient) Drain(ctx context.Context, in *protocol.DrainRequest, opts ...grpc.CallOption) (*protocol.DrainResponse, error) {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	return c.ControlClient.Drain(ctx, in, opts...)
}

func (c *boundClient) SetRules(ctx context.Context, in *protocol.SetRulesRequest, opts ...grpc.CallOption) (*protocol.SetRulesResponse, error) {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	return c.ControlClient.SetRules(ctx, in, opts...)
}

// Events is a stream for the process's life: it has no deadline of its own,
// and ends when the caller cancels ctx or the process ends.
func (c *boundClient) Events(ctx context.Context, in *protocol.EventsRequest, opts ...grpc.CallOption) (grpc.ServerStreamingClient[protocol.EventBatch], error) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(c.life, cancel)
	s, err := c.ControlClient.Events(ctx, in, opts...)
	if err != nil {
		stop()
		cancel()
		return nil, err
	}
	return s, nil
}
