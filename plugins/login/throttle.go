package main

import (
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// limiter counts failed logins per source address and per user name, over a
// sliding window.
//
// The rule, for each key (an address, and a name, known or not):
//   - a check may start only while the key has fewer than limit failures in
//     the last window, counting checks in flight as failures until they end,
//     and is not locked out; otherwise the request waits (see server.attempt);
//   - the failure that brings the count to limit locks the key out for
//     lockout;
//   - after a failure, the reply waits base × 2^(n−1), at most maxDelay, where
//     n is the larger of the two keys' counts;
//   - a success resets the name's count, not the address's: one good account
//     must not buy an address fresh guesses at the others.
//
// So no key ever gets more than limit checks in any window, however many
// connections it opens.
type limiter struct {
	window, lockout, base, maxDelay time.Duration

	mu    sync.Mutex
	addrs table
	users table
}

// limiterConfig sets a limiter's numbers.
type limiterConfig struct {
	addrLimit, userLimit            int
	window, lockout, base, maxDelay time.Duration
}

// maxKeys bounds each table, so that many addresses or invented names cannot
// grow memory without bound.
const maxKeys = 1 << 16

// evictTries is how many of the least recently used entries a full table
// looks at for one that holds nothing (no failure in the window, no lockout,
// no check in flight) to forget for a new key: the work per request stays
// bounded. When none of them is idle, the new key is held off (its request
// waits, as a locked-out one does) rather than forgetting what a key
// failed: as nginx's limit_req, which removes the least recently used state
// and, if even then it cannot make a new one, refuses the request.
const evictTries = 8

func newLimiter(c limiterConfig) *limiter {
	return &limiter{
		window: c.window, lockout: c.lockout, base: c.base, maxDelay: c.maxDelay,
		addrs: newTable(c.addrLimit), users: newTable(c.userLimit),
	}
}

type table struct {
	limit int
	m     *simplelru.LRU[string, *entry] // at most maxKeys, by last use
}

func newTable(limit int) table {
	m, _ := simplelru.NewLRU[string, *entry](maxKeys, nil)
	return table{limit: limit, m: m}
}

// tableFullRetry is when a key the full table had no room for asks again.
const tableFullRetry = time.Second

type entry struct {
	fails    []time.Time // in the window, oldest first, at most limit
	inflight int
	locked   time.Time // locked out until
}

// ticket is an admitted check: pass it back to succeeded or failed.
type ticket struct{ addr, user string }

// admit starts a check for addr and user if both allow one. Otherwise it
// returns when to ask again.
func (l *limiter) admit(now time.Time, addr, user string) (t ticket, retry time.Time, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.addrs.get(addr, now, l.window)
	u := l.users.get(user, now, l.window)
	if a == nil || u == nil { // a table is full of keys in use
		l.addrs.tidy(addr)
		l.users.tidy(user)
		return ticket{}, now.Add(tableFullRetry), false
	}
	ra, okA := a.allowed(now, l.addrs.limit, l.window)
	ru, okU := u.allowed(now, l.users.limit, l.window)
	if !okA || !okU {
		l.addrs.tidy(addr)
		l.users.tidy(user)
		return ticket{}, later(ra, ru), false
	}
	a.inflight++
	u.inflight++
	return ticket{addr, user}, time.Time{}, true
}

// succeeded ends a check that matched.
func (l *limiter) succeeded(t ticket) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if a, _ := l.addrs.m.Peek(t.addr); a != nil {
		a.inflight--
	}
	if u, _ := l.users.m.Peek(t.user); u != nil {
		u.inflight--
		u.fails = u.fails[:0]
	}
	l.addrs.tidy(t.addr)
	l.users.tidy(t.user)
}

// cancel ends a check that was not made.
func (l *limiter) cancel(t ticket) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if a, _ := l.addrs.m.Peek(t.addr); a != nil {
		a.inflight--
	}
	if u, _ := l.users.m.Peek(t.user); u != nil {
		u.inflight--
	}
	l.addrs.tidy(t.addr)
	l.users.tidy(t.user)
}

// failure is what a failed check leads to.
type failure struct {
	delay                  time.Duration // before the reply
	addrFails, userFails   int           // in the window, this one included
	addrLocked, userLocked bool          // this failure locked the key out
}

// failed ends a check that did not match.
func (l *limiter) failed(now time.Time, t ticket) failure {
	l.mu.Lock()
	defer l.mu.Unlock()
	var f failure
	a := l.addrs.get(t.addr, now, l.window) // in flight: never evicted, found
	u := l.users.get(t.user, now, l.window)
	if a == nil || u == nil {
		return f
	}
	f.addrFails, f.addrLocked = a.fail(now, l.addrs.limit, l.lockout)
	f.userFails, f.userLocked = u.fail(now, l.users.limit, l.lockout)
	f.delay = l.delay(max(f.addrFails, f.userFails))
	return f
}

// delay is base × 2^(n−1), at most maxDelay.
func (l *limiter) delay(n int) time.Duration {
	if n <= 0 || l.base <= 0 {
		return 0
	}
	d := l.base
	for i := 1; i < n && d < l.maxDelay; i++ {
		d *= 2
	}
	return min(d, l.maxDelay)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// get returns key's entry, pruned to the window, creating it if need be;
// nil when the table is full and none of the evictTries least recently used
// entries is idle. A key checked in flight is never forgotten: failed finds
// its entry.
func (t *table) get(key string, now time.Time, window time.Duration) *entry {
	e, ok := t.m.Get(key)
	if !ok {
		if t.m.Len() >= maxKeys && !t.evict(now, window) {
			return nil
		}
		e = &entry{}
		t.m.Add(key, e)
	}
	e.prune(now, window)
	return e
}

// tidy drops key's entry if it holds nothing.
func (t *table) tidy(key string) {
	if e, _ := t.m.Peek(key); e != nil && e.idle() {
		t.m.Remove(key)
	}
}

// evict makes room for one key, looking at no more than evictTries of the
// least recently used entries: the first that is idle, once pruned, goes;
// one that is not is moved to the front, so that the next try sees the next.
func (t *table) evict(now time.Time, window time.Duration) bool {
	for range evictTries {
		k, e, ok := t.m.GetOldest()
		if !ok {
			return true
		}
		e.prune(now, window)
		if e.idle() {
			t.m.Remove(k)
			return true
		}
		t.m.Get(k) // in use: to the front
	}
	return false
}

// idle reports whether e holds nothing: no failure in the window, no
// lockout, no check in flight.
func (e *entry) idle() bool {
	return len(e.fails) == 0 && e.inflight == 0 && e.locked.IsZero()
}

func (e *entry) prune(now time.Time, window time.Duration) {
	i := 0
	for i < len(e.fails) && now.Sub(e.fails[i]) >= window {
		i++
	}
	if i > 0 {
		e.fails = append(e.fails[:0], e.fails[i:]...)
	}
	if !e.locked.IsZero() && !now.Before(e.locked) {
		e.locked = time.Time{}
	}
}

// allowed reports whether a check may start now, or when to ask again.
func (e *entry) allowed(now time.Time, limit int, window time.Duration) (time.Time, bool) {
	if now.Before(e.locked) {
		return e.locked, false
	}
	if len(e.fails)+e.inflight < limit {
		return time.Time{}, true
	}
	// Enough failures must leave the window; checks in flight end soon.
	if k := len(e.fails) + e.inflight - limit; k < len(e.fails) {
		return e.fails[k].Add(window), false
	}
	return now.Add(20 * time.Millisecond), false
}

// fail records a failure of a check in flight; it reports the failures in the
// window and whether this one locked the key out.
func (e *entry) fail(now time.Time, limit int, lockout time.Duration) (int, bool) {
	e.inflight--
	e.fails = append(e.fails, now)
	if len(e.fails) > limit {
		e.fails = append(e.fails[:0], e.fails[len(e.fails)-limit:]...)
	}
	if len(e.fails) >= limit && e.locked.IsZero() {
		e.locked = now.Add(lockout)
		return len(e.fails), true
	}
	return len(e.fails), false
}

// sourceKey is the address failures are counted against: the IP for IPv4, the
// /64 network for IPv6 (one host usually holds a whole /64).
func sourceKey(a net.Addr) string {
	var ip netip.Addr
	switch a := a.(type) {
	case *net.TCPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	default:
		if ap, err := netip.ParseAddrPort(a.String()); err == nil {
			ip = ap.Addr()
		}
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}
