package presence

import "time"

// stepRegistryWindow is stepRegistry for a loss with its resume window.
func (h *Hub) stepRegistryWindow(in Input, w time.Duration) {
	in.Window = w
	h.stepRegistry(in)
}

// stepRegistry feeds the registry and queues its events for delivery.
func (h *Hub) stepRegistry(in Input) {
	now := time.Now()
	h.regMu.Lock()
	defer h.regMu.Unlock()
	h.regEvs = h.reg.Step(now, in, h.regEvs[:0])
	h.enqueue()
}

// enqueue hands the registry's new events to the event goroutine and
// re-arms the registry's timer. regMu is held.
func (h *Hub) enqueue() {
	if len(h.regEvs) > 0 {
		h.queue = append(h.queue, h.regEvs...)
	}
	if d := h.reg.Deadline(); len(h.regEvs) > 0 || (!d.IsZero() && (h.regTimer.IsZero() || d.Before(h.regTimer))) {
		select {
		case h.regKick <- struct{}{}:
		default:
		}
	}
}

// deliver is the event goroutine: it hands queued events to OnEvent and
// the subscribers, in order, and wakes the registry at its deadline.
func (h *Hub) deliver() {
	defer h.eventsWG.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var batch []Event
	var subs []subscriber
	for {
		h.regMu.Lock()
		if d := h.reg.Deadline(); !d.IsZero() && !d.After(time.Now()) {
			h.regEvs = h.reg.Step(time.Now(), Input{Kind: DeadlineReached}, h.regEvs[:0])
			h.queue = append(h.queue, h.regEvs...)
		}
		// Swap buffers; one grown by a burst (a shutdown's leaves) is let go.
		batch, h.queue = h.queue, batch[:0]
		if cap(h.queue) > 4096 {
			h.queue = nil
		}
		subs = subs[:0]
		if h.cfg.Cluster != nil {
			subs = append(subs, subscriber{fn: h.cfg.Cluster.Local})
		} else if h.cfg.OnEvent != nil {
			subs = append(subs, subscriber{fn: h.cfg.OnEvent})
		}
		for _, sub := range h.subs {
			subs = append(subs, sub)
		}
		h.busy = len(batch) > 0
		h.regTimer = h.reg.Deadline()
		if len(batch) == 0 {
			h.idle.Broadcast()
		}
		h.regMu.Unlock()
		for _, e := range batch {
			for _, sub := range subs {
				if e.Seq > sub.from {
					sub.fn(e)
				}
			}
		}
		clear(batch) // no event's strings outlive its delivery
		if len(batch) > 0 {
			continue // look again before waiting
		}
		if !h.regTimer.IsZero() {
			timer.Reset(time.Until(h.regTimer))
		}
		select {
		case <-h.regKick:
		case <-timer.C:
		case <-h.stop:
			timer.Stop()
			h.regMu.Lock()
			h.busy = false
			h.idle.Broadcast()
			h.regMu.Unlock()
			return
		}
		timer.Stop()
	}
}

// stepRegistryAlive is stepRegistry for a connection that became alive;
// it reports whether its session was already online (no SessionJoined).
func (h *Hub) stepRegistryAlive(in Input) (resumed bool) {
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
