package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sockplay/sockplay/sdk"
)

// Replies, the tutorial's exact words.
var (
	replySuccess = []byte("success")
	replyFail    = []byte("fail")
)

const writeTimeout = 10 * time.Second

// server serves the login protocol.
//
// Framing: each read from the connection is cut at its newlines. Every
// complete line ("\n" or "\r\n" ending) is one request in line mode, answered
// with "success\n" or "fail\n". The bytes after the last newline, if any, are
// one whole request in message mode, the tutorial's "one send is one
// message", answered with "success" or "fail" and nothing more — unless the
// read filled the buffer, when they are kept and completed by the next read.
// A request longer than maxRequest gets fail and the connection is closed
// (by the SDK, which drains the rest of the client's bytes first).
type server struct {
	cfg      config
	log      hclog.Logger
	accounts *store
	limits   *limiter
	checks   chan struct{} // a slot per password check running
}

var _ sdk.Handler = (*server)(nil)

func newServer(c config, st *store, log hclog.Logger) *server {
	return &server{
		cfg:      c,
		log:      log,
		accounts: st,
		limits: newLimiter(limiterConfig{
			addrLimit: c.addrFailures, userLimit: c.userFailures,
			window: c.window, lockout: c.lockout, base: c.baseDelay, maxDelay: c.maxDelay,
		}),
		checks: make(chan struct{}, c.maxChecks),
	}
}

// ServeConn answers the requests on c until the client closes it, stays idle
// for idleTimeout, sends an oversized request, or ctx is cancelled.
func (s *server) ServeConn(ctx context.Context, c net.Conn) {
	peer := c.RemoteAddr().String()
	src := sourceKey(c.RemoteAddr())
	malformed := 0
	defer func() {
		if malformed > maxMalformedLogs {
			s.log.Warn("malformed requests on the connection", "peer", peer, "count", malformed)
		}
	}()
	stop := context.AfterFunc(ctx, func() { _ = c.SetReadDeadline(time.Now()) })
	defer stop()

	// Room for a request of maxRequest bytes and its "\r\n".
	buf := make([]byte, s.cfg.maxRequest+2)
	have := 0 // bytes kept from the last read: a request cut by the buffer's end
	for {
		_ = c.SetReadDeadline(time.Now().Add(s.cfg.idleTimeout))
		if ctx.Err() != nil {
			return
		}
		n, err := c.Read(buf[have:])
		data := buf[:have+n]
		full := len(data) == len(buf)
		have = 0
		for len(data) > 0 {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				if full && err == nil && len(data) < len(buf) {
					have = copy(buf, data)
					break
				}
				if len(data) > s.cfg.maxRequest {
					s.oversize(c, peer, false)
					return
				}
				if !s.handle(ctx, c, peer, src, data, false, &malformed) {
					return
				}
				break
			}
			line := bytes.TrimSuffix(data[:i], []byte("\r"))
			if len(line) > s.cfg.maxRequest {
				s.oversize(c, peer, true)
				return
			}
			if !s.handle(ctx, c, peer, src, line, true, &malformed) {
				return
			}
			data = data[i+1:]
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && ctx.Err() == nil {
				s.log.Debug("connection ends", "peer", peer, "error", err)
			}
			return
		}
	}
}

// The first maxMalformedLogs malformed requests of a connection are logged
// one by one, the rest counted in one line when it closes.
const maxMalformedLogs = 5

// handle answers one request and reports whether the connection goes on.
func (s *server) handle(ctx context.Context, c net.Conn, peer, src string, req []byte, line bool, malformed *int) bool {
	var ok bool
	name, password, err := parseRequest(req)
	if err == nil {
		// Throttled and logged under the form it is stored in.
		name = lookupName(name)
	}
	if err != nil {
		// A malformed request checks no password, so it tells nothing and
		// is not throttled; its bytes are not logged, they may be a password.
		if *malformed++; *malformed <= maxMalformedLogs {
			s.log.Warn("malformed request", "peer", peer, "reason", err.Error(), "bytes", len(req))
		}
	} else {
		ok = s.attempt(ctx, peer, src, name, password)
	}
	reply := replyFail
	if ok {
		reply = replySuccess
	}
	if line {
		reply = append(reply[:len(reply):len(reply)], '\n')
	}
	_ = c.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := c.Write(reply); err != nil {
		s.log.Debug("reply not sent", "peer", peer, "error", err)
		return false
	}
	return true
}

// attempt checks one login under the limiter's rules: while the address or
// the name is locked out (or at its limit) the request waits — it is held,
// not answered — for at most lockout + window + maxDelay, and is then checked
// as any other; one still not admitted by then is refused with fail,
// unchecked. A failed check's reply waits the limiter's growing delay.
func (s *server) attempt(ctx context.Context, peer, src, name, password string) bool {
	giveUp := time.Now().Add(s.cfg.lockout + s.cfg.window + s.cfg.maxDelay)
	var t ticket
	for held := false; ; held = true {
		now := time.Now()
		var retry time.Time
		var ok bool
		if t, retry, ok = s.limits.admit(now, src, name); ok {
			break
		}
		if retry.After(giveUp) || now.After(giveUp) {
			s.log.Warn("login refused: still locked out", "peer", peer, "user", name)
			return false
		}
		if !held {
			s.log.Debug("login held while locked out", "peer", peer, "user", name, "until", retry.Format(time.RFC3339Nano))
		}
		if !sleep(ctx, retry.Sub(now)) {
			return false
		}
	}

	select {
	case s.checks <- struct{}{}:
	case <-ctx.Done():
		s.limits.cancel(t)
		return false
	}
	ok := s.accounts.verify(name, password)
	<-s.checks

	if ok {
		s.limits.succeeded(t)
		s.log.Info("login", "peer", peer, "user", name)
		return true
	}
	f := s.limits.failed(time.Now(), t)
	s.log.Info("login failed", "peer", peer, "user", name, "addr_failures", f.addrFails, "user_failures", f.userFails,
		"delay", f.delay)
	if f.addrLocked {
		s.log.Warn("source address locked out", "peer", peer, "addr", src, "failures", f.addrFails,
			"window", s.cfg.window, "lockout", s.cfg.lockout)
	}
	if f.userLocked {
		s.log.Warn("user name locked out", "peer", peer, "user", name, "failures", f.userFails,
			"window", s.cfg.window, "lockout", s.cfg.lockout)
	}
	sleep(ctx, f.delay)
	return false
}

// oversize answers a request over maxRequest with fail and ends the
// connection. The SDK's lingering close then drains what the client still
// sends (sdk.LingerTimeout, sdk.LingerBytes), so that a reset does not
// destroy the reply.
func (s *server) oversize(c net.Conn, peer string, line bool) {
	s.log.Warn("request too large; closing the connection", "peer", peer, "limit", s.cfg.maxRequest)
	reply := replyFail
	if line {
		reply = []byte("fail\n")
	}
	_ = c.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, _ = c.Write(reply)
}

// sleep waits d or until ctx is done, and reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
