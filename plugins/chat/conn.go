package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/sockplay/sockplay/sdk"
)

var _ sdk.Handler = (*room)(nil)

// readSize is the read buffer of each connection.
const readSize = 4096

// longAgo is a deadline in the past: it makes a blocked Read return at once.
var longAgo = time.Unix(1, 0)

// ServeConn runs one client's session: it joins the room, reads and handles
// the client's lines until it quits, goes away, is disconnected by the room
// or the server drains, then leaves and waits until its last output is
// written.
func (r *room) ServeConn(ctx context.Context, c net.Conn) {
	if tc, ok := c.(interface{ SetWriteBuffer(int) error }); ok && r.cfg.SndBuf > 0 {
		// Bounds what a client that stops reading holds in the kernel (up
		// to 4 MB each with autotuning), so the room's rules apply soon.
		_ = tc.SetWriteBuffer(r.cfg.SndBuf)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m := newMember(c, cancel)
	s := &session{r: r, m: m, ctx: sctx, fr: NewFramer(r.cfg.MaxLine), flood: floodLimiter(r.cfg)}
	s.history = r.join(m)
	r.log.Trace("joined", "peer", c.RemoteAddr().String(), "name", m.name)
	go m.writeLoop(r)

	end := s.read(ctx)
	var last []byte
	switch end {
	case endQuit:
		r.leave(m, m.name+" left")
		last = notice("bye")
	case endGone:
		r.leave(m, m.name+" left")
	case endStalled:
		r.leave(m, m.name+" was disconnected: not reading")
	case endOverBudget:
		r.leave(m, fmt.Sprintf("%s was disconnected: not reading (over %d bytes waiting)", m.name, r.cfg.SendQ))
	case endDrain:
		// Everyone is leaving: no announcements.
		r.leave(m, "")
		last = notice("the server is shutting down")
	}
	m.finish(last)
	<-m.done
	r.log.Trace("left", "peer", c.RemoteAddr().String(), "name", m.name, "end", end.String())
}

// floodLimiter is a client's token bucket: FloodBurst lines at once, then
// FloodRate lines a second (RFC 1459, section 8.10, "Flood control of
// clients", with other numbers).
func floodLimiter(cfg Config) *rate.Limiter {
	if cfg.FloodRate == 0 {
		return rate.NewLimiter(rate.Inf, cfg.FloodBurst)
	}
	return rate.NewLimiter(rate.Limit(cfg.FloodRate), cfg.FloodBurst)
}

// session is the reading side of one client.
type session struct {
	r       *room
	m       *member
	ctx     context.Context // ends with a drain or when the room disconnects the client
	fr      *Framer
	flood   *rate.Limiter
	history [][]byte // shown with the welcome
	greeted bool
	quit    bool
	stopped bool // a wait ended with ctx: handle no more lines
}

type end int

const (
	endGone       end = iota // EOF or a read error
	endQuit                  // /quit or quit
	endStalled               // took no output, or held the room back, for stall
	endDrain                 // the server is draining
	endOverBudget            // more than sendq bytes waited for it
)

func (e end) String() string {
	switch e {
	case endGone:
		return "gone"
	case endQuit:
		return "quit"
	case endStalled:
		return "stalled"
	case endDrain:
		return "drain"
	case endOverBudget:
		return "over sendq"
	}
	return "end(" + strconv.Itoa(int(e)) + ")"
}

// read reads and handles lines until the session ends. A line that comes
// without a "\n" is complete when no more bytes follow within LineWait (at
// once when LineWait is 0), or when the client closes. While a line waits
// (flood control, flow control) nothing more is read: the client's own TCP
// window then slows it.
func (s *session) read(ctx context.Context) end {
	c := s.m.conn
	// The drain wakes a blocked Read with a past deadline. dl keeps it from
	// being overwritten by the line-wait deadline.
	var dl sync.Mutex
	draining := false
	stop := context.AfterFunc(ctx, func() {
		dl.Lock()
		draining = true
		_ = c.SetReadDeadline(longAgo)
		dl.Unlock()
	})
	defer stop()
	setDeadline := func(t time.Time) bool {
		dl.Lock()
		defer dl.Unlock()
		if draining {
			return false
		}
		_ = c.SetReadDeadline(t)
		return true
	}

	wait := s.r.cfg.LineWait
	buf := make([]byte, readSize)
	armed := false
	for !s.quit {
		if s.fr.Pending() && wait > 0 {
			if !setDeadline(time.Now().Add(wait)) {
				return endDrain
			}
			armed = true
		} else if armed {
			if !setDeadline(time.Time{}) {
				return endDrain
			}
			armed = false
		}
		n, err := c.Read(buf)
		if n > 0 {
			s.fr.Feed(buf[:n], s.handle)
			if wait == 0 {
				s.fr.Flush(s.handle)
			}
		}
		if err == nil {
			continue
		}
		why, kicked := s.m.kicked()
		switch {
		case ctx.Err() != nil:
			return endDrain
		case kicked:
			return why
		case errors.Is(err, os.ErrDeadlineExceeded):
			s.fr.Flush(s.handle) // the sender paused: the pending bytes are a line
			continue
		}
		s.fr.Flush(s.handle) // bytes sent just before closing are a line too
		if s.quit {
			return endQuit
		}
		return endGone
	}
	return endQuit
}

// reply queues lines for this client alone, once its own queue has room.
func (s *session) reply(lines ...[]byte) {
	s.deliver(false, func() {
		for _, l := range lines {
			s.r.pushLocked(s.m, l)
		}
	})
}

// deliver runs fn holding the room's lock once flow control lets it (see
// room.admit); wholeRoom says whether what fn queues goes to everyone.
func (s *session) deliver(wholeRoom bool, fn func()) {
	if s.stopped {
		return
	}
	if err := s.r.admit(s.ctx, s.m, wholeRoom, fn); err != nil {
		s.stopped = true
	}
}

// handle acts on one line.
func (s *session) handle(fr Frame) {
	if s.quit || s.stopped {
		return // whatever follows quit is not read
	}
	// Flood control: past its burst, a client's lines are taken at
	// floodrate; meanwhile its socket is not read.
	if err := s.flood.Wait(s.ctx); err != nil {
		s.stopped = true
		return
	}
	msg := Parse(fr)
	switch msg.Kind {
	case KindEmpty:
		return // no reply, so it does not count as the first line either
	case KindQuit:
		s.quit = true
		return
	case KindText:
		var note []byte
		if msg.Neutralised {
			note = notice("control characters in your message were made harmless (^[ is ESC, ^@ is NUL)")
		}
		s.deliver(true, func() { s.r.sayLocked(s.m, msg.Text, note) })
	case KindBad:
		why := msg.Err.Error()
		if errors.Is(msg.Err, ErrTooLong) {
			why = fmt.Sprintf("it is longer than %d bytes", s.r.cfg.MaxLine)
		}
		s.reply(notice("your message was not sent: " + why))
	case KindCommand:
		s.command(msg)
		if !s.greeted {
			s.greeted = true
			s.welcome()
		}
	}
}

// welcome greets the client after the reply to its first command. The
// server never speaks first, and a plain message gets exactly one reply (its
// own line, in one write): the tutorial's client sends a line, reads once and
// prints, so anything more would be what it prints for its next line.
func (s *session) welcome() {
	hist := s.history
	s.history = nil
	s.deliver(false, func() {
		m := s.m
		s.r.pushLocked(m, notice(fmt.Sprintf("welcome to %s, %s: %d here; /help lists the commands", s.r.cfg.Room, m.name, len(s.r.members))))
		if len(hist) > 0 {
			s.r.pushLocked(m, notice(fmt.Sprintf("the last %d messages before you came:", len(hist))))
		}
	})
	if len(hist) == 0 {
		return
	}
	// A line at a time, so that a long history waits for the client's
	// queue like anything else instead of going over its sendq.
	for _, l := range hist {
		s.reply(l)
	}
	s.reply(notice("end of history"))
}

const help = `commands:
  /nick NAME   change your name (a letter, then letters, digits, - or _; at most 16)
  /who         list who is here
  /help        this help
  /quit        leave (so does a line that is just "quit")
  //text       send a line that starts with "/"`

func (s *session) command(msg Message) {
	m := s.m
	switch msg.Cmd {
	case "nick":
		name := msg.Arg
		if err := validNick(name); err != nil {
			s.reply(notice(err.Error()))
			return
		}
		if name == m.name {
			s.reply(notice("you are already " + name))
			return
		}
		// The rename notice goes to everyone: it waits like a message.
		s.deliver(true, func() {
			if !s.r.renameLocked(m, name) {
				s.r.pushLocked(m, notice("nick "+name+" is taken"))
			}
		})
	case "who":
		s.deliver(false, func() {
			names := s.r.whoLocked()
			s.r.pushLocked(m, notice(fmt.Sprintf("%d here: %s", len(names), strings.Join(names, ", "))))
		})
	case "help":
		var b []byte
		for _, l := range strings.Split(help, "\n") {
			b = append(b, notice(l)...)
		}
		s.reply(b)
	default:
		s.reply(notice(fmt.Sprintf("unknown command %q; /help lists them", "/"+msg.Cmd)))
	}
}
