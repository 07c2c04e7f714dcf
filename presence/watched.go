package presence

import "github.com/heartbeat-go/heartbeat/fsm"

// Watched is one connection the hub watches.
type Watched struct {
	c *conn
	h *Hub
}

// ID returns the connection ID the hub assigned (see Watch).
func (w *Watched) ID() string { return w.c.id }

// Update sets new metadata for the connection's session; an update event
// follows if it differs.
func (w *Watched) Update(meta Meta) {
	w.h.stepRegistry(RegistryInput{Kind: ConnUpdate, Conn: w.c.id, Meta: meta})
}

// Close closes the connection on purpose (close code 1000): its session
// leaves at once unless another connection holds it. It returns at once;
// the connection closes on a hub goroutine.
func (w *Watched) Close() {
	s := w.c.shard
	s.mu.Lock()
	defer s.unlock()
	s.step(w.c, fsm.Input{Kind: fsm.CloseRequested, Err: ErrKicked})
}

// Drain closes the connection with close code 1001 ("going away") because
// the server wants the client elsewhere or later (rebalancing, recycling):
// the client redials, so its session waits out the resume window like
// after a loss instead of leaving. It returns at once.
func (w *Watched) Drain() {
	s := w.c.shard
	s.mu.Lock()
	defer s.unlock()
	s.step(w.c, fsm.Input{Kind: fsm.CloseRequested, Err: ErrDrain})
}

// State returns the connection's heartbeat state.
func (w *Watched) State() fsm.State {
	s := w.c.shard
	s.mu.Lock()
	defer s.mu.Unlock()
	if w.c.m == nil {
		return w.c.final
	}
	return w.c.m.State()
}
