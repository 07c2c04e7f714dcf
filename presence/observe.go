package presence

import (
	"time"

	"github.com/heartbeat-go/heartbeat/fsm"
)

// Change is one connection's state change, as HubConfig.Observe sees it.
type Change struct {
	Conn, User, Session string
	From, To            fsm.State
	Reason              fsm.Reason
	Err                 error
	At                  time.Time
	// Resumed: the connection became alive for a session already online
	// (a redial within the resume window, or another connection of it).
	Resumed bool
}

// observe hands a state change to HubConfig.Observe. s.mu is held.
func (s *shard) observe(c *conn, a *fsm.Action, resumed bool) {
	s.h.cfg.Observe(Change{Conn: c.id, User: c.user, Session: c.session, From: a.From, To: a.To,
		Reason: a.Reason, Err: a.Err, At: time.Now(), Resumed: resumed})
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
