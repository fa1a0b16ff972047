package main

import "time"

// maxSources bounds the limiter's memory under a flood of spoofed sources:
// past it, sources idle for the longest are forgotten first (they start again
// with a full bucket, which only errs on the side of answering).
const maxSources = 65536

// limiter is a token bucket per source address. It is used by the one
// goroutine that reads the socket, so it needs no lock.
type limiter struct {
	rate    float64 // tokens per second
	burst   float64
	now     func() time.Time
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(rate float64, burst int, now func() time.Time) *limiter {
	return &limiter{rate: rate, burst: float64(burst), now: now, buckets: map[string]*bucket{}}
}

// allow reports whether a datagram from src may be answered now.
func (l *limiter) allow(src string) bool {
	t := l.now()
	b, ok := l.buckets[src]
	if !ok {
		if len(l.buckets) >= maxSources {
			l.evict(t)
		}
		b = &bucket{tokens: l.burst, last: t}
		l.buckets[src] = b
	}
	b.tokens = min(l.burst, b.tokens+t.Sub(b.last).Seconds()*l.rate)
	b.last = t
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// evict forgets every source whose bucket has refilled (it would start full
// anyway), and if that frees nothing, half of the map.
func (l *limiter) evict(t time.Time) {
	for k, b := range l.buckets {
		if b.tokens+t.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
	for k := range l.buckets {
		if len(l.buckets) < maxSources/2 {
			break
		}
		delete(l.buckets, k)
	}
}
