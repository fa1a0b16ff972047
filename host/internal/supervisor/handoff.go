package supervisor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/sockplay/sockplay/sdk/protocol/fdpass"
	"github.com/sockplay/sockplay/sdk/protocol/plog"
)

// The host's side of the descriptor handoff to one process (package fdpass
// has the wire). A plugin with the feature handoff-ack answers each
// connection: the host keeps its copy of every connection until the plugin
// says it took it, gives back to the listener those it returns (it was out of
// descriptors) and those it left unanswered and untouched when it exits, and
// stops sending to it while too many are unanswered or after a return. A
// plugin without the feature is held back while it leaves messages unread.
const (
	// maxUnanswered is how many connections a plugin may leave unanswered
	// before the host stops sending it more. It is well above what a plugin
	// answers at once (64, or what came in 2 ms), bounds what a process that
	// is alive but not reading (stopped, deadlocked) holds up until it is
	// replaced, and stays inside the socket's send buffer (each message costs
	// about 800 bytes of it; handoffSendBuffer), so that a Send does not
	// block on a full socket.
	maxUnanswered = 256
	// handoffSendBuffer is the SO_SNDBUF asked for on the host's end (the
	// kernel caps it at twice net.core.wmem_max, 416 KiB by default).
	handoffSendBuffer = 1 << 20
	// After a plugin returns connections the host waits before sending it
	// more: minReturnPause, doubling up to maxReturnPause while returns go
	// on, as net/http backs off on EMFILE.
	minReturnPause = 5 * time.Millisecond
	maxReturnPause = time.Second
	// maxUnreadBytes is how much a plugin without handoff-ack may leave
	// unread on its socket (SIOCOUTQ: the messages' kernel buffers, about
	// 1 KiB each) before the host holds back.
	maxUnreadBytes = 32 << 10
	// sendTimeout bounds a sendmsg to a plugin whose socket is full, which
	// the limits above make rare: past it the handoff fails and the plugin
	// is replaced.
	sendTimeout = 5 * time.Second
	// answerTimeout is how long a plugin may leave maxUnanswered
	// connections unanswered while its control service answers (a stopped
	// or deadlocked one is found by the health check first): past it the
	// handoff fails and the plugin is replaced, and its successor gets the
	// connections.
	answerTimeout = 10 * time.Second
)

var (
	errInterrupted = errors.New("handoff interrupted: the supervisor is stopping")
	errExited      = errors.New("plugin process exited")
	errStalled     = errors.New("the plugin is not taking connections")
)

type handoff struct {
	conn   *net.UnixConn
	sender *fdpass.Sender
	log    hclog.Logger
	done   chan struct{} // closed when run has returned: the process is gone

	answers atomic.Bool // the plugin has feature handoff-ack

	sendMu      sync.Mutex
	gone        bool // under sendMu: the process is gone, Send refuses
	interrupted atomic.Bool
	sentConns   atomic.Uint64 // connections sent, in all (Process.settle)
	sentBatches atomic.Uint64 // messages sent, in all (Process.settle)

	mu         sync.Mutex
	inflight   map[uint64]int // connections sent, not yet answered: their host copies
	pause      time.Duration
	pauseUntil time.Time
	requeue    func(ids []uint64, fds []int)
	answered   chan struct{} // a token when an answer came in
	returned   uint64        // connections returned, in all

	answerTimeout time.Duration // answerTimeout; tests shorten it

	returnLog plog.Limiter
}

func newHandoff(c *net.UnixConn, log hclog.Logger) *handoff {
	_ = c.SetWriteBuffer(handoffSendBuffer)
	return &handoff{conn: c, sender: fdpass.NewSender(c), log: log, done: make(chan struct{}),
		inflight: map[uint64]int{}, answered: make(chan struct{}, 1), answerTimeout: answerTimeout}
}

// setRequeue says where connections go back to: those the plugin returns and
// those unanswered when it exits. Until it is set they are closed.
func (h *handoff) setRequeue(f func(ids []uint64, fds []int)) {
	h.mu.Lock()
	h.requeue = f
	h.mu.Unlock()
}

// Send hands descriptors to the process. It is safe for concurrent use.
// After it succeeds, the descriptors of connections (kind Conn) are the
// handoff's: it closes them once the plugin has them (at once, for a plugin
// that does not answer) or gives them back through the requeue function. A
// shared socket's descriptor (Packet, Listener) stays the caller's.
func (h *handoff) Send(kind fdpass.Kind, ids []uint64, fds []int) error {
	h.sendMu.Lock()
	defer h.sendMu.Unlock()
	if h.interrupted.Load() {
		return errInterrupted
	}
	if h.gone {
		return errExited
	}
	track := kind == fdpass.Conn && h.answers.Load()
	if track {
		// Before the send: the answer can come back before sendmsg returns.
		h.mu.Lock()
		for i, id := range ids {
			h.inflight[id] = fds[i]
		}
		h.mu.Unlock()
	}
	_ = h.conn.SetWriteDeadline(time.Now().Add(sendTimeout))
	if err := h.sender.Send(kind, ids, fds); err != nil {
		if track {
			h.mu.Lock()
			for _, id := range ids {
				delete(h.inflight, id)
			}
			h.mu.Unlock()
		}
		return err
	}
	h.sentBatches.Add(1)
	if kind == fdpass.Conn {
		h.sentConns.Add(uint64(len(fds)))
		if !track {
			for _, fd := range fds {
				syscall.Close(fd)
			}
		}
	}
	return nil
}

// Ready waits until the plugin may be sent more connections: it has fewer
// than maxUnanswered unanswered and no return pause runs (or, without
// handoff-ack, it has read what it was sent). It returns ctx's error, or
// errExited when the process is gone.
func (h *handoff) Ready(ctx context.Context) error {
	select {
	case <-h.done:
		return errExited
	default:
	}
	if !h.answers.Load() {
		return h.readyUnanswered(ctx)
	}
	var stalled time.Time // since when the window has been full without an answer
	for {
		h.mu.Lock()
		wait := time.Until(h.pauseUntil)
		full := len(h.inflight) >= maxUnanswered
		h.mu.Unlock()
		if wait <= 0 && !full {
			return nil
		}
		if !full {
			stalled = time.Time{}
		} else if stalled.IsZero() {
			stalled = time.Now()
		} else if time.Since(stalled) >= h.answerTimeout {
			return fmt.Errorf("%w: %d unanswered for %s", errStalled, maxUnanswered, h.answerTimeout)
		}
		if full {
			wait = max(wait, h.answerTimeout-time.Since(stalled))
		}
		timer := time.NewTimer(wait)
		answered := false
		select {
		case <-h.answered:
			answered = true
		case <-timer.C:
		case <-ctx.Done():
		case <-h.done:
		}
		if answered {
			stalled = time.Time{}
		}
		timer.Stop()
		if err := ctx.Err(); err != nil {
			return err
		}
		select {
		case <-h.done:
			return errExited
		default:
		}
	}
}

// readyUnanswered holds back while a plugin that does not answer has more
// than maxUnreadBytes unread: it is not taking what it is sent (stopped,
// deadlocked, or slower than the clients), and what it holds unread is lost
// if it is replaced. There is no wakeup for "the peer read", so it polls,
// from 1 ms doubling to 100 ms; past answerTimeout the handoff fails.
func (h *handoff) readyUnanswered(ctx context.Context) error {
	delay := time.Millisecond
	start := time.Now()
	for {
		if q, err := h.unread(); err != nil || q <= maxUnreadBytes {
			return nil
		}
		if time.Since(start) >= h.answerTimeout {
			return fmt.Errorf("%w: over %d KiB of messages unread for %s", errStalled, maxUnreadBytes>>10, h.answerTimeout)
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-h.done:
			t.Stop()
			return errExited
		}
		delay = min(2*delay, 100*time.Millisecond)
	}
}

// unread is SIOCOUTQ on the host's end: the bytes of kernel buffer its
// messages hold until the plugin reads them (unix(7)).
func (h *handoff) unread() (int, error) {
	rc, err := h.conn.SyscallConn()
	if err != nil {
		return 0, err
	}
	var q int32
	var errno syscall.Errno
	if err := rc.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCOUTQ, uintptr(unsafe.Pointer(&q)))
	}); err != nil {
		return 0, err
	}
	if errno != 0 {
		return 0, errno
	}
	return int(q), nil
}

// interrupt makes a Send in progress, and every later one, fail at once.
func (h *handoff) interrupt() {
	h.interrupted.Store(true)
	_ = h.conn.SetWriteDeadline(time.Unix(1, 0))
}

// run reads the plugin's answers until its end of the socket closes, which
// happens the moment the process dies (it is the process's only copy), then
// gives back what is still unanswered and closes done. A plugin without
// handoff-ack never writes: run only waits for the end of file.
func (h *handoff) run() {
	defer close(h.done)
	r := fdpass.NewReceiver(h.conn)
	var bad plog.Limiter
	for {
		msg, err := r.Recv()
		if errors.Is(err, fdpass.ErrShortMessage) || errors.Is(err, fdpass.ErrBadVersion) ||
			errors.Is(err, fdpass.ErrCountMismatch) || errors.Is(err, fdpass.ErrTruncated) {
			for _, m := range msg {
				if m.File != nil {
					m.File.Close()
				}
			}
			if ok, suppressed := bad.Allow(time.Now()); ok {
				h.log.Warn("bad message from the plugin on the handoff socket", "error", err, "suppressed", suppressed)
			}
			continue
		}
		if err != nil {
			break // end of file, or the host closed its end
		}
		h.answer(msg)
	}
	h.sendMu.Lock()
	h.gone = true
	h.mu.Lock()
	ids := make([]uint64, 0, len(h.inflight))
	fds := make([]int, 0, len(h.inflight))
	for id, fd := range h.inflight {
		ids = append(ids, id)
		fds = append(fds, fd)
	}
	clear(h.inflight)
	requeue := h.requeue
	h.mu.Unlock()
	h.sendMu.Unlock()
	if len(ids) == 0 {
		return
	}
	sortByID(ids, fds)
	// Those the plugin did nothing with (it never read their message, or did
	// not get to them) go to the next process as if just accepted; those it
	// had begun to serve end with it, as a crash's connections do.
	keepIDs, keepFDs := ids[:0], fds[:0]
	lost := 0
	for i, fd := range fds {
		if untouched(fd) {
			keepIDs, keepFDs = append(keepIDs, ids[i]), append(keepFDs, fd)
		} else {
			syscall.Close(fd)
			lost++
		}
	}
	h.log.Info("plugin exited with connections unanswered; those it had not begun to serve go to the next process",
		"next", len(keepIDs), "closed", lost)
	giveBack(requeue, keepIDs, keepFDs)
}

// TCP states (include/net/tcp_states.h).
const (
	tcpEstablished = 1
	tcpCloseWait   = 8
)

// untouched reports whether nobody has read from or written to the TCP
// connection fd since it was accepted: it is still established (or the
// client has half-closed it), nothing was sent on it, and every byte the
// client sent is still unread (TCP_INFO, SIOCINQ, SIOCOUTQ; tcp(7)). Such a
// connection can go to another process as if it had just been accepted. A
// descriptor that is not a TCP socket counts as untouched.
func untouched(fd int) bool {
	info, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		return true
	}
	unread, err1 := unix.IoctlGetInt(fd, unix.SIOCINQ)
	unsent, err2 := unix.IoctlGetInt(fd, unix.SIOCOUTQ)
	received := info.Bytes_received // the client's FIN counts one
	switch info.State {
	case tcpEstablished:
	case tcpCloseWait:
		received--
	default:
		return false
	}
	return err1 == nil && err2 == nil && info.Bytes_acked == 0 && unsent == 0 && uint64(unread) == received
}

// answer applies one answer: taken connections' host copies are closed,
// returned ones go back to the listener and pause the sends.
func (h *handoff) answer(msg []fdpass.Handoff) {
	if len(msg) == 0 {
		return
	}
	kind := msg[0].Kind
	if kind != fdpass.Taken && kind != fdpass.Returned {
		for _, m := range msg {
			if m.File != nil {
				m.File.Close()
			}
		}
		h.log.Warn("unexpected message from the plugin on the handoff socket", "kind", string(rune(kind)))
		return
	}
	ids := make([]uint64, 0, len(msg))
	fds := make([]int, 0, len(msg))
	h.mu.Lock()
	for _, m := range msg {
		if fd, ok := h.inflight[m.ID]; ok {
			delete(h.inflight, m.ID)
			ids = append(ids, m.ID)
			fds = append(fds, fd)
		}
	}
	var pause time.Duration
	var returned uint64
	requeue := h.requeue
	if kind == fdpass.Taken {
		h.pause = 0
	} else {
		h.pause = min(max(2*h.pause, minReturnPause), maxReturnPause)
		h.pauseUntil = time.Now().Add(h.pause)
		h.returned += uint64(len(ids))
		pause, returned = h.pause, h.returned
	}
	h.mu.Unlock()
	if kind == fdpass.Taken {
		for _, fd := range fds {
			syscall.Close(fd)
		}
	} else {
		if ok, suppressed := h.returnLog.Allow(time.Now()); ok {
			h.log.Warn("plugin returned connections it could not take (out of descriptors?); they wait and are sent again",
				"conns", len(ids), "retry_in", pause.String(), "returned_total", returned, "suppressed", suppressed)
		}
		giveBack(requeue, ids, fds)
	}
	select {
	case h.answered <- struct{}{}:
	default:
	}
}

// giveBack hands connections back to the listener, or closes them when there
// is none.
func giveBack(requeue func([]uint64, []int), ids []uint64, fds []int) {
	if len(ids) == 0 {
		return
	}
	if requeue == nil {
		for _, fd := range fds {
			syscall.Close(fd)
		}
		return
	}
	requeue(ids, fds)
}

// sortByID sorts ids, and fds with them, so that connections go back in the
// order they were accepted (ids grow with each accept).
func sortByID(ids []uint64, fds []int) {
	for i := 1; i < len(ids); i++ {
		for j := i; j > 0 && ids[j] < ids[j-1]; j-- {
			ids[j], ids[j-1] = ids[j-1], ids[j]
			fds[j], fds[j-1] = fds[j-1], fds[j]
		}
	}
}
