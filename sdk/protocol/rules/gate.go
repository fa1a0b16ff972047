package rules

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"golang.org/x/time/rate"
)

// Gate enforces a Rules and keeps what enforcing needs: how many connections
// are open in all and per source, each source's token bucket, and how many
// were refused for each reason. Its rules can be replaced while it runs
// (SetRules): the counts carry over, so connections already open still count
// against new limits, and nothing already admitted is cut off. It is safe for
// concurrent use.
type Gate struct {
	rules atomic.Pointer[Rules]

	mu   sync.Mutex
	open int
	// perSource has an entry per source with a connection counted open:
	// it is bounded by the open connections (each caller bounds those: the
	// SDK by the connections it serves, the host by listen's table of the
	// connections it admitted).
	perSource map[netip.Addr]int
	limiters  *simplelru.LRU[netip.Addr, *rate.Limiter] // MaxSources, least recently used evicted

	refused  [6]atomic.Uint64 // by reasonIndex
	onRefuse func(Refusal)
	logMu    sync.Mutex
	logged   *simplelru.LRU[netip.Addr, time.Time] // last refusal line per source; maxLogged
}

// MaxSources bounds the token buckets a Gate keeps, one per source: a flood
// of datagrams from spoofed sources cannot grow a plugin's memory past it
// (each costs about 200 bytes: 13 MiB at most). When it is reached the
// bucket used least recently is forgotten, in constant time, as nginx's
// limit_req does when its zone is full ("the least recently used state is
// removed"); a forgotten source starts again with a full bucket, which errs
// on the side of admitting it once more.
const MaxSources = 1 << 16

var reasonIndex = map[Reason]int{Deny: 0, NotAllowed: 1, MaxConns: 2, MaxPerSource: 3, Rate: 4, ProxyHeader: 5}

// NewGate returns a gate enforcing r (nil: nothing).
func NewGate(r *Rules) *Gate {
	limiters, _ := simplelru.NewLRU[netip.Addr, *rate.Limiter](MaxSources, nil)
	logged, _ := simplelru.NewLRU[netip.Addr, time.Time](maxLogged, nil)
	g := &Gate{perSource: map[netip.Addr]int{}, limiters: limiters, logged: logged}
	g.SetRules(r)
	return g
}

// Rules returns the rules in force (nil: none).
func (g *Gate) Rules() *Rules { return g.rules.Load() }

// Active reports whether any rule is in force: a caller with nothing to
// enforce skips the gate (one atomic load).
func (g *Gate) Active() bool { return g != nil && g.rules.Load() != nil }

// SetRules replaces the rules. Counts of open connections carry over; the
// token buckets start full again when the rate or the burst changed.
func (g *Gate) SetRules(r *Rules) {
	if r.IsZero() {
		r = nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	old := g.rules.Swap(r)
	if old == nil || r == nil || old.Rate != r.Rate || old.Burst != r.Burst {
		g.limiters.Purge()
	}
	if !r.Counts() { // nothing counts now: a later limit starts from what opens then
		g.open = 0
		clear(g.perSource)
	}
}

// Recount replaces the counts of open connections with the connections from
// open (one address per connection): for a caller that learns which are open
// from elsewhere (the host asks the kernel) rather than through Release.
func (g *Gate) Recount(open []netip.Addr) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open = len(open)
	clear(g.perSource)
	for _, ip := range open {
		g.perSource[Source(ip)]++
	}
}

// Admit decides on a new connection from ip at now: "" admits it and counts it
// open (the caller must Release it when it closes, when the rules count
// connections); otherwise the reason it is refused, and nothing is counted
// and no token is taken. The checks run in the order of Reasons, so a
// connection refused for a count does not use up its source's rate.
func (g *Gate) Admit(ip netip.Addr, now time.Time) Reason {
	why, _ := g.AdmitCounted(ip, now)
	return why
}

// AdmitCounted is Admit, and it also reports whether the connection was
// counted open, so that the caller must Release it when it closes.
func (g *Gate) AdmitCounted(ip netip.Addr, now time.Time) (_ Reason, counted bool) {
	r := g.rules.Load()
	if r == nil {
		return "", false
	}
	if why := r.Check(ip); why != "" {
		return why, false
	}
	if !r.Counts() && r.Rate == 0 {
		return "", false
	}
	src := Source(ip)
	g.mu.Lock()
	defer g.mu.Unlock()
	if r.MaxConns > 0 && g.open >= r.MaxConns {
		return MaxConns, false
	}
	if r.MaxPerSource > 0 && g.perSource[src] >= r.MaxPerSource {
		return MaxPerSource, false
	}
	if r.Rate > 0 && !g.limiter(r, src, now).AllowN(now, 1) {
		return Rate, false
	}
	if r.Counts() {
		g.open++
		g.perSource[src]++
		return "", true
	}
	return "", false
}

// Release counts a connection from ip that Admit counted as closed.
func (g *Gate) Release(ip netip.Addr) {
	src := Source(ip)
	g.mu.Lock()
	defer g.mu.Unlock()
	if n := g.perSource[src]; n > 1 {
		g.perSource[src] = n - 1
	} else if n == 1 {
		delete(g.perSource, src)
	} else {
		return // not counted: admitted before the rules counted
	}
	g.open--
}

// Open returns how many connections are counted open, in all and from ip's
// source.
func (g *Gate) Open(ip netip.Addr) (all, fromSource int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.open, g.perSource[Source(ip)]
}

// AdmitDatagram decides on a datagram from ip: allow, deny and the rate
// apply; "" admits it.
func (g *Gate) AdmitDatagram(ip netip.Addr, now time.Time) Reason {
	r := g.rules.Load()
	if r == nil {
		return ""
	}
	if why := r.Check(ip); why != "" {
		return why
	}
	if r.Rate == 0 {
		return ""
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.limiter(r, Source(ip), now).AllowN(now, 1) {
		return Rate
	}
	return ""
}

// limiter returns src's token bucket, made full if it has none; g.mu is
// held. Constant time: past MaxSources the least recently used is evicted.
func (g *Gate) limiter(r *Rules, src netip.Addr, now time.Time) *rate.Limiter {
	if l, ok := g.limiters.Get(src); ok {
		return l
	}
	l := rate.NewLimiter(r.Rate, r.Burst)
	g.limiters.Add(src, l)
	return l
}

// Sources returns how many sources have a token bucket.
func (g *Gate) Sources() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.limiters.Len()
}

// Refuse counts a refusal for reason from ip and reports whether to log it:
// at most one line per source per second, so that a client hammering a
// closed door costs one line a second. The log lines' sources are
// remembered for a second; past maxLogged sources at once the others are
// counted but not logged.
func (g *Gate) Refuse(why Reason, ip netip.Addr, now time.Time) (log bool) {
	if i, ok := reasonIndex[why]; ok {
		g.refused[i].Add(1)
	}
	src := Source(ip)
	g.logMu.Lock()
	defer g.logMu.Unlock()
	if last, ok := g.logged.Peek(src); ok && now.Sub(last) < time.Second {
		return false
	}
	if !g.logged.Contains(src) && g.logged.Len() >= maxLogged {
		// Full: the oldest line's source is forgotten if its second is
		// over; if not, maxLogged sources were logged within the second,
		// and this one is counted but not logged.
		if _, t, ok := g.logged.GetOldest(); ok && now.Sub(t) < time.Second {
			return false
		}
		g.logged.RemoveOldest()
	}
	g.logged.Add(src, now) // to the front: the oldest line stays the oldest
	return true
}

const maxLogged = 4096

// Refused returns how many connections or datagrams were refused, by reason
// (reasons with none are left out).
func (g *Gate) Refused() map[Reason]uint64 {
	out := map[Reason]uint64{}
	if g == nil {
		return out
	}
	for r, i := range reasonIndex {
		if n := g.refused[i].Load(); n > 0 {
			out[r] = n
		}
	}
	return out
}
