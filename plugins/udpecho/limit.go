package main

import (
	"time"

	"golang.org/x/time/rate"
)

// maxSources bounds the limiter's memory under a flood of spoofed sources:
// past it, sources whose bucket has refilled are forgotten first (they would
// start full anyway), then half of the rest (they start again with a full
// bucket, which only errs on the side of answering).
const maxSources = 65536

// limiter is a token bucket (golang.org/x/time/rate) per source address. It
// is used by the one goroutine that reads the socket, so it needs no lock of
// its own.
type limiter struct {
	limit   rate.Limit
	burst   int
	sources map[string]*rate.Limiter
}

func newLimiter(perSecond float64, burst int) *limiter {
	return &limiter{limit: rate.Limit(perSecond), burst: burst, sources: map[string]*rate.Limiter{}}
}

// allow reports whether a datagram from src may be answered at now.
func (l *limiter) allow(now time.Time, src string) bool {
	b, ok := l.sources[src]
	if !ok {
		if len(l.sources) >= maxSources {
			l.evict(now)
		}
		b = rate.NewLimiter(l.limit, l.burst)
		l.sources[src] = b
	}
	return b.AllowN(now, 1)
}

func (l *limiter) evict(now time.Time) {
	for k, b := range l.sources {
		if b.TokensAt(now) >= float64(l.burst) {
			delete(l.sources, k)
		}
	}
	for k := range l.sources {
		if len(l.sources) < maxSources/2 {
			break
		}
		delete(l.sources, k)
	}
}
