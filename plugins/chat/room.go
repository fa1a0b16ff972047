package main

import (
	"errors"
	"fmt"
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

// room is the one chat room of a plugin process: who is in it and the recent
// messages. Everything said goes through broadcast, which puts the line, in
// one shared slice, on every member's outgoing queue while holding mu: so
// every member sees the room's lines in the same order, and a member's own
// lines in the order it sent them. Nobody's socket is written under mu; each
// member has its own writer goroutine.
type room struct {
	cfg Config
	log logger

	mu      sync.Mutex
	members []*member          // in no particular order; member.idx is the position
	names   map[string]*member // by lower-cased name
	next    int                // the last guestN handed out
	history [][]byte           // ring of the last cfg.History text lines
	histAt  int                // where the next one goes
}

func newRoom(cfg Config, log logger) *room {
	return &room{cfg: cfg, log: log, names: map[string]*member{}}
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
	line := notice(m.name + " joined")
	for _, o := range r.members {
		o.push(line)
	}
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
// others why it went.
func (r *room) leave(m *member, announce string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	last := r.members[len(r.members)-1]
	r.members[m.idx], last.idx = last, m.idx
	r.members[len(r.members)-1] = nil
	r.members = r.members[:len(r.members)-1]
	delete(r.names, strings.ToLower(m.name))
	if announce != "" {
		r.broadcastLocked(notice(announce))
	}
}

// say sends a member's text to the whole room, the member included, and keeps
// it in the history. note, if not nil, follows the line to m in the same
// write.
func (r *room) say(m *member, text string, note []byte) {
	line := make([]byte, 0, len(m.name)+len(text)+3)
	line = append(append(append(append(line, m.name...), ": "...), text...), '\n')
	own := line
	if note != nil {
		own = append(line[:len(line):len(line)], note...)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, o := range r.members {
		if o == m {
			o.push(own)
		} else {
			o.push(line)
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

func (r *room) broadcastLocked(line []byte) {
	for _, o := range r.members {
		o.push(line)
	}
}

// rename gives m a new name and tells the room; it fails if the name is taken.
func (r *room) rename(m *member, name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := strings.ToLower(name)
	if o := r.names[key]; o != nil && o != m {
		return fmt.Errorf("nick %s is taken", name)
	}
	old := m.name
	delete(r.names, strings.ToLower(old))
	r.names[key] = m
	m.name = name
	r.broadcastLocked(notice(old + " is now known as " + name))
	return nil
}

// who lists the members' names, sorted.
func (r *room) who() []string {
	r.mu.Lock()
	names := make([]string, len(r.members))
	for i, m := range r.members {
		names[i] = m.name
	}
	r.mu.Unlock()
	slices.SortFunc(names, func(a, b string) int { return strings.Compare(strings.ToLower(a), strings.ToLower(b)) })
	return names
}

func (r *room) size() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.members)
}

// notice formats a line from the server: "*** text\n".
func notice(text string) []byte { return []byte("*** " + text + "\n") }

// member is one connected client: its name and its outgoing queue, which its
// own writer goroutine drains to the socket.
//
// The queue holds at most cap(q) lines. When a line arrives and it is full,
// the oldest line is dropped and counted; the writer reports the count to
// the client as "*** N lines dropped ..." in place of what was lost. A write
// that the client does not take within stall ends the connection.
type member struct {
	conn   net.Conn
	stall  time.Duration
	linger time.Duration // least time between two writes

	// name and idx are guarded by room.mu; name is written only by the
	// member's own handler goroutine, which may therefore read it freely.
	name string
	idx  int

	mu      sync.Mutex
	q       [][]byte // ring
	head, n int
	dropped int
	closing bool // no more lines; the writer flushes and stops
	wake    chan struct{}

	done    chan struct{} // closed when the writer has stopped
	stalled atomic.Bool   // the writer gave up on a client not reading
}

func newMember(c net.Conn, queue int, stall, linger time.Duration) *member {
	return &member{
		conn:   c,
		stall:  stall,
		linger: linger,
		q:      make([][]byte, queue),
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}),
	}
}

// push queues line, dropping the oldest queued line if the queue is full.
// It never blocks on the network.
func (m *member) push(line []byte) {
	m.mu.Lock()
	if m.closing {
		m.mu.Unlock()
		return
	}
	if m.n == len(m.q) {
		m.q[m.head] = nil
		m.head = (m.head + 1) % len(m.q)
		m.n--
		m.dropped++
	}
	m.q[(m.head+m.n)%len(m.q)] = line
	m.n++
	// The writer empties the queue each time it takes from it, so only the
	// first line after that needs to wake it.
	first := m.n == 1
	m.mu.Unlock()
	if first {
		m.signal()
	}
}

func (m *member) signal() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// finish queues a last line (if not nil) and tells the writer to stop once
// the queue is written.
func (m *member) finish(last []byte) {
	if last != nil {
		m.push(last)
	}
	m.mu.Lock()
	m.closing = true
	m.mu.Unlock()
	m.signal()
}

// maxBuf is the write buffer a writer keeps between batches.
const maxBuf = 64 << 10

// writeLoop writes what is queued, in batches, until finish or a failed
// write. Run by the member's handler, which waits for done.
func (m *member) writeLoop() {
	defer close(m.done)
	var buf []byte
	var last time.Time
	for {
		if m.linger > 0 {
			// Under steady traffic, let lines gather: one write (and one
			// wakeup of the client) carries several. After a quiet spell
			// the first line goes at once.
			if wait := m.linger - time.Since(last); wait > 0 {
				time.Sleep(wait)
			}
		}
		m.mu.Lock()
		if m.dropped > 0 {
			buf = fmt.Appendf(buf, "*** %d lines dropped: you are not reading fast enough\n", m.dropped)
			m.dropped = 0
		}
		for ; m.n > 0; m.n-- {
			buf = append(buf, m.q[m.head]...)
			m.q[m.head] = nil
			m.head = (m.head + 1) % len(m.q)
		}
		closing := m.closing
		m.mu.Unlock()
		if len(buf) > 0 {
			last = time.Now()
			_ = m.conn.SetWriteDeadline(last.Add(m.stall))
			if _, err := m.conn.Write(buf); err != nil {
				m.fail(err)
				return
			}
			if cap(buf) > maxBuf {
				buf = nil
			}
			buf = buf[:0]
		}
		if closing {
			return
		}
		<-m.wake
	}
}

// fail stops the member after a failed write: the queue is dropped and the
// connection closed, which ends the handler's read.
func (m *member) fail(err error) {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		m.stalled.Store(true)
	}
	m.mu.Lock()
	m.closing = true
	clear(m.q)
	m.n = 0
	m.mu.Unlock()
	m.conn.Close()
}
