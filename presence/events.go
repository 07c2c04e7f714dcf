package presence

import "time"

// stepRegistryWindow is stepRegistry for a loss with its resume window.
func (h *Hub) stepRegistryWindow(in RegistryInput, w time.Duration) {
	in.Window = w
	h.stepRegistry(in)
}

// stepRegistry feeds the registry and queues its events for delivery.
func (h *Hub) stepRegistry(in RegistryInput) {
	now := time.Now()
	h.regMu.Lock()
	defer h.regMu.Unlock()
	h.regEvs = h.reg.Step(now, in, h.regEvs[:0])
	h.enqueue()
}

// enqueue hands the registry's new events to the event goroutine and
// wakes it if the registry's deadline moved earlier. regMu is held.
func (h *Hub) enqueue() {
	h.events.Push(h.regEvs)
	if d := h.reg.Deadline(); !d.IsZero() && (h.regTimer.IsZero() || d.Before(h.regTimer)) {
		h.events.Kick()
	}
}

// deliver is the event goroutine: it hands queued events to OnEvent and
// the subscribers, in order, and wakes the registry at its deadline.
func (h *Hub) deliver() {
	defer h.eventsWG.Done()
	h.events.Run(h.stop, func() time.Time {
		if d := h.reg.Deadline(); !d.IsZero() && !d.After(time.Now()) {
			h.regEvs = h.reg.Step(time.Now(), RegistryInput{Kind: DeadlineReached}, h.regEvs[:0])
			h.events.Push(h.regEvs)
		}
		h.regTimer = h.reg.Deadline()
		return h.regTimer
	})
}

// stepRegistryAlive is stepRegistry for a connection that became alive;
// it reports whether its session was already online (no SessionJoined).
func (h *Hub) stepRegistryAlive(in RegistryInput) (resumed bool) {
	now := time.Now()
	h.regMu.Lock()
	defer h.regMu.Unlock()
	h.regEvs = h.reg.Step(now, in, h.regEvs[:0])
	resumed = true
	for _, e := range h.regEvs {
		if e.Kind == SessionJoined && e.User == in.User && e.Session == in.Session {
			resumed = false
		}
	}
	h.enqueue()
	return resumed
}
