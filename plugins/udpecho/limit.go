package main

import (
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"golang.org/x/time/rate"
)

// maxSources bounds the limiter's memory (and the loop guard's) under a
// flood of spoofed sources: past it the source seen least recently is
// forgotten, in constant time, as nginx's limit_req forgets the least
// recently used state when its zone is full. A forgotten source starts again
// with a full bucket, which only errs on the side of answering.
const maxSources = 65536

// limiter is a token bucket (golang.org/x/time/rate) per source address. It
// is used by the one goroutine that reads the socket, so it needs no lock of
// its own.
type limiter struct {
	limit   rate.Limit
	burst   int
	sources *simplelru.LRU[string, *rate.Limiter]
}

func newLimiter(perSecond float64, burst int) *limiter {
	sources, _ := simplelru.NewLRU[string, *rate.Limiter](maxSources, nil)
	return &limiter{limit: rate.Limit(perSecond), burst: burst, sources: sources}
}

// allow reports whether a datagram from src may be answered at now.
func (l *limiter) allow(now time.Time, src string) bool {
	b, ok := l.sources.Get(src)
	if !ok {
		b = rate.NewLimiter(l.limit, l.burst)
		l.sources.Add(src, b)
	}
	return b.AllowN(now, 1)
}
