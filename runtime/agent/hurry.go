package agent

import "sync"

// hurrySignal is how a second interrupt reaches a stopping agent: Hurry
// closes it once, and the shutdown's grace period (lifecycle step 9) ends
// when it is closed.
type hurrySignal struct {
	once sync.Once
	ch   chan struct{}
}

func (h *hurrySignal) init() { h.ch = make(chan struct{}) }

func (h *hurrySignal) close() { h.once.Do(func() { close(h.ch) }) }

// Hurry cuts a graceful stop short, as a second Ctrl-C does: the grace
// period ends at once and the runs still going are cancelled (recorded
// cancelled, with the cause "the agent is shutting down"). Called before
// Run's context ends, it takes effect when the stop begins. It is safe to
// call more than once and from any goroutine.
func (a *Agent) Hurry() {
	a.hurry.close()
	a.log.Warn("hurrying the stop: cancelling the runs still going")
}
