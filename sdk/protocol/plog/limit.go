package plog

import (
	"sync"
	"time"
)

// Limiter lets a repeated log line through at most once per Every (1 s
// when zero) and counts the ones it holds back, so that an error that
// recurs thousands of times a second costs one line a second, each saying
// how many were suppressed before it:
//
//	if ok, suppressed := lim.Allow(time.Now()); ok {
//		log.Warn("accept failed", "error", err, "suppressed", suppressed)
//	}
//
// Its zero value is ready to use; it is safe for concurrent use. The host, the
// SDK and plugins (udpecho) use it.
type Limiter struct {
	Every time.Duration

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// Allow reports whether a line may be logged at now, and if so how many
// were held back since the last one it let through.
func (l *Limiter) Allow(now time.Time) (ok bool, suppressed int) {
	every := l.Every
	if every <= 0 {
		every = time.Second
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() && now.Sub(l.last) < every {
		l.suppressed++
		return false, 0
	}
	l.last = now
	suppressed, l.suppressed = l.suppressed, 0
	return true, suppressed
}
