package main

import (
	"context"
	"errors"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// logger is the part of the host's logger the room uses.
type logger interface {
	Trace(msg string, args ...any)
	Debug(msg string, args ...any)
}

// lineOverhead is what a queued line costs beyond its bytes (its slice
// header and slot), counted against the client's sendq so that a queue of
// short lines is bounded in memory too.
const lineOverhead = 32

// room is the one chat room of a plugin process: who is in it and the recent
// messages. Everything said goes through admit and then pushLocked, which
// puts the line, in one shared slice, on every member's outgoing queue while
// holding mu: so every member sees the room's lines in the same order, and a
// member's own lines in the order it sent them. Nobody's socket is written
// under mu; each member has its own writer goroutine.
//
// Flow control (README.md, "Flow control"): a member whose queue reaches
// half its sendq is full until it has written it down to a quarter; while
// any member is full, lines from clients wait in admit, first come first
// served, and their senders' sockets are not read. A member full for longer
// than stall is disconnected, so nobody holds the room back for longer.
type room struct {
	cfg       Config
	log       logger
	high, low int // a member is full from high bytes queued down to low

	mu      sync.Mutex
	members []*member          // in no particular order; member.idx is the position
	names   map[string]*member // by lower-cased name
	next    int                // the last guestN handed out
	history [][]byte           // ring of the last cfg.History text lines
	histAt  int                // where the next one goes
	full    map[*member]struct{}
	waiting []*waiter // senders waiting for full to empty, in arrival order
}

// waiter is one sender waiting in admit for the whole room.
type waiter struct{ turn chan struct{} }

func newRoom(cfg Config, log logger) *room {
	return &room{
		cfg:   cfg,
		log:   log,
		high:  cfg.SendQ / 2,
		low:   cfg.SendQ / 4,
		names: map[string]*member{},
		full:  map[*member]struct{}{},
	}
}

// errNotAdmitted: the session ended (a drain, or its client was
// disconnected) while its line waited.
var errNotAdmitted = errors.New("chat: the session ended while its line waited")

// admit runs deliver, holding mu, once the line it delivers may go: when
// wholeRoom is set, once no member is full and every sender that came
// earlier has gone; otherwise once m itself is not full (a reply only m
// sees). While it waits, a member that has been full for stall is
// disconnected. It fails only when ctx ends first.
func (r *room) admit(ctx context.Context, m *member, wholeRoom bool, deliver func()) error {
	r.mu.Lock()
	if r.clearLocked(m, wholeRoom, nil) {
		deliver()
		r.mu.Unlock()
		return nil
	}
	var w *waiter
	wake := m.unfull
	if wholeRoom {
		w = &waiter{turn: make(chan struct{}, 1)}
		r.waiting = append(r.waiting, w)
		wake = w.turn
	}
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if ctx.Err() != nil {
			r.dequeueLocked(w)
			r.mu.Unlock()
			return errNotAdmitted
		}
		if r.clearLocked(m, wholeRoom, w) {
			r.dequeueLocked(w)
			deliver()
			r.mu.Unlock()
			return nil
		}
		due, kicked := r.overdueLocked(m, wholeRoom)
		if kicked {
			continue
		}
		r.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(due)
		} else {
			timer.Reset(due)
		}
		select {
		case <-wake:
		case <-timer.C:
		case <-ctx.Done():
		}
		r.mu.Lock()
	}
}

// clearLocked reports whether a line may go now (see admit); w is the
// caller's place in the queue, if it has one.
func (r *room) clearLocked(m *member, wholeRoom bool, w *waiter) bool {
	if !wholeRoom {
		return !m.isFull()
	}
	return len(r.full) == 0 && (len(r.waiting) == 0 || r.waiting[0] == w)
}

// dequeueLocked takes w (if not nil) out of the queue and, if the room is
// clear, gives the next sender its turn.
func (r *room) dequeueLocked(w *waiter) {
	if w == nil {
		return
	}
	if i := slices.Index(r.waiting, w); i >= 0 {
		r.waiting = slices.Delete(r.waiting, i, i+1)
	}
	r.wakeLocked()
}

// wakeLocked tells the first waiting sender to look again if no member is
// full.
func (r *room) wakeLocked() {
	if len(r.full) == 0 && len(r.waiting) > 0 {
		select {
		case r.waiting[0].turn <- struct{}{}:
		default:
		}
	}
}

// overdueLocked disconnects the members that hold the caller back and have
// been full for stall. It returns how long until the next of them is due,
// and whether it disconnected any.
func (r *room) overdueLocked(m *member, wholeRoom bool) (time.Duration, bool) {
	now := time.Now()
	due := r.cfg.Stall
	kicked := false
	check := func(f *member) {
		left := f.fullSince.Add(r.cfg.Stall).Sub(now)
		if left <= 0 {
			r.kickLocked(f, endStalled)
			kicked = true
			return
		}
		due = min(due, left)
	}
	if !wholeRoom {
		if m.isFull() {
			check(m)
		}
		return due, kicked
	}
	for f := range r.full {
		check(f)
	}
	return due, kicked
}

// pushLocked queues line for m, a member of the room, and keeps m's flow
// state: full at high bytes queued, disconnected over sendq (only lines
// that do not wait in admit, the room's own notices, can take it there).
func (r *room) pushLocked(m *member, line []byte) {
	m.mu.Lock()
	if m.closing {
		m.mu.Unlock()
		return
	}
	m.q = append(m.q, line)
	m.backlog += len(line) + lineOverhead
	over := m.backlog > r.cfg.SendQ
	nowFull := !m.full && m.backlog >= r.high
	if nowFull {
		m.full = true
	}
	// The writer sleeps only on an empty queue.
	first := len(m.q)-m.head == 1
	m.mu.Unlock()
	switch {
	case over:
		r.kickLocked(m, endOverBudget)
		return
	case nowFull:
		m.fullSince = time.Now()
		r.full[m] = struct{}{}
	}
	if first {
		m.signal()
	}
}

func (r *room) broadcastLocked(line []byte) {
	for _, o := range r.members {
		r.pushLocked(o, line)
	}
}

// kick disconnects m: see kickLocked.
func (r *room) kick(m *member, why end) {
	r.mu.Lock()
	r.kickLocked(m, why)
	r.mu.Unlock()
}

// kickLocked disconnects m for why: its queue is dropped, its session's
// waits end, and closing the connection ends its read and its writer's
// write. Its session then leaves the room and tells it why.
func (r *room) kickLocked(m *member, why end) {
	m.mu.Lock()
	if _, done := m.kicked(); done {
		m.mu.Unlock()
		return
	}
	m.why.Store(int32(why) + 1)
	m.closing = true
	clear(m.q[m.head:])
	lines, bytes := len(m.q)-m.head, m.backlog
	m.q, m.head, m.backlog = nil, 0, 0
	m.mu.Unlock()
	if why != endGone {
		r.log.Debug("disconnecting a client", "name", m.name, "why", why.String(), "lines_queued", lines, "bytes_queued", bytes)
	}
	r.unfullLocked(m, true)
	m.cancel()
	m.conn.Close()
}

// unfull ends m's full state once its writer has brought it down to low.
func (r *room) unfull(m *member) {
	r.mu.Lock()
	r.unfullLocked(m, false)
	r.mu.Unlock()
}

// unfullLocked ends m's full state if it has come down to low, or at once
// with force (m is leaving), and lets the waiting senders look again.
func (r *room) unfullLocked(m *member, force bool) {
	m.mu.Lock()
	if !m.full || (!force && m.backlog > r.low) {
		m.mu.Unlock()
		return
	}
	m.full = false
	m.mu.Unlock()
	delete(r.full, m)
	select {
	case m.unfull <- struct{}{}:
	default:
	}
	r.wakeLocked()
}

// join names m, adds it to the room and tells the others. It returns the
// history as it was before m joined.
func (r *room) join(m *member) [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		r.next++
		m.name = "guest" + strconv.Itoa(r.next)
		if r.names[m.name] == nil {
			break
		}
	}
	r.names[m.name] = m
	r.broadcastLocked(notice(m.name + " joined"))
	m.idx = len(r.members)
	r.members = append(r.members, m)
	var hist [][]byte
	for i := range len(r.history) {
		if l := r.history[(r.histAt+i)%len(r.history)]; l != nil {
			hist = append(hist, l)
		}
	}
	return hist
}

// leave takes m out of the room and, unless announce is empty, tells the
// others why it went. Notices like this one do not wait in admit: the
// room cannot hold back a client that is leaving.
func (r *room) leave(m *member, announce string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	last := r.members[len(r.members)-1]
	r.members[m.idx], last.idx = last, m.idx
	r.members[len(r.members)-1] = nil
	r.members = r.members[:len(r.members)-1]
	delete(r.names, strings.ToLower(m.name))
	r.unfullLocked(m, true)
	if announce != "" {
		r.broadcastLocked(notice(announce))
	}
}

// sayLocked sends a member's text to the whole room, the member included,
// and keeps it in the history. note, if not nil, follows the line to m in
// the same write.
func (r *room) sayLocked(m *member, text string, note []byte) {
	line := make([]byte, 0, len(m.name)+len(text)+3)
	line = append(append(append(append(line, m.name...), ": "...), text...), '\n')
	own := line
	if note != nil {
		own = append(line[:len(line):len(line)], note...)
	}
	for _, o := range r.members {
		if o == m {
			r.pushLocked(o, own)
		} else {
			r.pushLocked(o, line)
		}
	}
	if r.cfg.History > 0 {
		if r.history == nil {
			r.history = make([][]byte, r.cfg.History)
		}
		r.history[r.histAt] = line
		r.histAt = (r.histAt + 1) % len(r.history)
	}
}

// renameLocked gives m a new name and tells the room; it fails if the name
// is taken.
func (r *room) renameLocked(m *member, name string) bool {
	key := strings.ToLower(name)
	if o := r.names[key]; o != nil && o != m {
		return false
	}
	old := m.name
	delete(r.names, strings.ToLower(old))
	r.names[key] = m
	m.name = name
	r.broadcastLocked(notice(old + " is now known as " + name))
	return true
}

// whoLocked lists the members' names, sorted.
func (r *room) whoLocked() []string {
	names := make([]string, len(r.members))
	for i, m := range r.members {
		names[i] = m.name
	}
	slices.SortFunc(names, func(a, b string) int { return strings.Compare(strings.ToLower(a), strings.ToLower(b)) })
	return names
}

// notice formats a line from the server: "*** text\n".
func notice(text string) []byte { return []byte("*** " + text + "\n") }

// member is one connected client: its name and its outgoing queue, which its
// own writer goroutine drains to the socket.
//
// The queue is unbounded in lines but bounded in bytes by the room's flow
// control (see room). A write that the client does not take within stall
// ends the connection.
type member struct {
	conn   net.Conn
	cancel context.CancelFunc // ends the session's waits

	// name and idx are guarded by room.mu; name is written only by the
	// member's own handler goroutine, which may therefore read it freely.
	name string
	idx  int
	// fullSince is when the member last became full; guarded by room.mu.
	fullSince time.Time

	mu      sync.Mutex
	q       [][]byte // q[head:] waits to be written
	head    int
	backlog int  // bytes queued and not yet written, plus lineOverhead a line
	full    bool // see room; changed with room.mu held too
	closing bool // no more lines; the writer flushes and stops
	wake    chan struct{}
	unfull  chan struct{} // a token when the member stops being full

	done chan struct{} // closed when the writer has stopped
	why  atomic.Int32  // 1 + the end the room gave it, 0 if none: see kicked
}

// kicked reports whether the room disconnected m, and why.
func (m *member) kicked() (end, bool) {
	w := m.why.Load()
	return end(w - 1), w != 0
}

func newMember(c net.Conn, cancel context.CancelFunc) *member {
	return &member{
		conn:   c,
		cancel: cancel,
		wake:   make(chan struct{}, 1),
		unfull: make(chan struct{}, 1),
		done:   make(chan struct{}),
	}
}

func (m *member) isFull() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.full
}

func (m *member) signal() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// finish queues a last line (if not nil) and tells the writer to stop once
// the queue is written. The member has left the room.
func (m *member) finish(last []byte) {
	m.mu.Lock()
	if !m.closing {
		if last != nil {
			m.q = append(m.q, last)
		}
		m.closing = true
	}
	m.mu.Unlock()
	m.signal()
}

const (
	// batchMax is the most a writer takes from its queue for one batch
	// (one line more if that line alone is longer).
	batchMax = 64 << 10
	// writeChunk is the most written under one deadline: a client that
	// does not take this much (or the rest of the batch) within stall is
	// disconnected.
	writeChunk = 16 << 10
)

// writeLoop writes what is queued, in batches, until finish or a failed
// write. Run by the member's handler, which waits for done.
func (m *member) writeLoop(r *room) {
	defer close(m.done)
	var buf []byte
	var last time.Time
	for {
		m.mu.Lock()
		for m.head == len(m.q) && !m.closing {
			m.mu.Unlock()
			<-m.wake
			m.mu.Lock()
		}
		if m.head == len(m.q) {
			m.mu.Unlock()
			return // closing, and everything is written
		}
		busy := m.backlog >= batchMax
		m.mu.Unlock()
		if wait := r.cfg.Linger - time.Since(last); wait > 0 && !busy {
			// Under steady traffic, let lines gather: one write (and one
			// wakeup of the client) carries several. After a quiet spell
			// the first line goes at once, and a long queue goes at once.
			time.Sleep(wait)
		}
		m.mu.Lock()
		cost := 0
		for m.head < len(m.q) && (len(buf) == 0 || len(buf)+len(m.q[m.head]) <= batchMax) {
			l := m.q[m.head]
			buf = append(buf, l...)
			cost += len(l) + lineOverhead
			m.q[m.head] = nil
			m.head++
		}
		if m.head == len(m.q) {
			m.head = 0
			if cap(m.q) > 1024 {
				m.q = nil
			} else {
				m.q = m.q[:0]
			}
		}
		m.mu.Unlock()

		last = time.Now()
		for off := 0; off < len(buf); {
			end := min(off+writeChunk, len(buf))
			_ = m.conn.SetWriteDeadline(time.Now().Add(r.cfg.Stall))
			n, err := m.conn.Write(buf[off:end])
			off += n
			if err != nil {
				why := endGone
				if errors.Is(err, os.ErrDeadlineExceeded) {
					why = endStalled
				}
				r.kick(m, why)
				return
			}
		}
		if cap(buf) > 2*batchMax {
			buf = nil
		}
		buf = buf[:0]

		m.mu.Lock()
		m.backlog -= cost
		down := m.full && m.backlog <= r.low
		m.mu.Unlock()
		if down {
			r.unfull(m)
		}
	}
}
