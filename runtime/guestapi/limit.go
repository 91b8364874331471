package guestapi

import (
	"sync"
	"time"
)

// limiter is one guest's (or one address's) token bucket and its count
// of requests in flight.
type limiter struct {
	mu       sync.Mutex
	rate     float64 // tokens per second
	burst    float64
	tokens   float64
	last     time.Time
	maxIn    int // 0: unbounded
	inFlight int
}

func newLimiter(rate float64, burst, maxIn int, now time.Time) *limiter {
	return &limiter{rate: rate, burst: float64(burst), tokens: float64(burst), last: now, maxIn: maxIn}
}

// allow takes one token, reporting false when none is left.
func (l *limiter) allow(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if d := now.Sub(l.last); d > 0 {
		l.tokens = min(l.burst, l.tokens+d.Seconds()*l.rate)
		l.last = now
	}
	if l.tokens < 1 {
		return false
	}
	l.tokens--
	return true
}

// enter counts a request in, reporting false when maxIn are in already.
func (l *limiter) enter() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.maxIn > 0 && l.inFlight >= l.maxIn {
		return false
	}
	l.inFlight++
	return true
}

func (l *limiter) leave() {
	l.mu.Lock()
	l.inFlight--
	l.mu.Unlock()
}
