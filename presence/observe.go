package presence

import (
	"time"

	"github.com/heartbeat-go/heartbeat/fsm"
)

// ConnChange is one connection's state change, as HubConfig.Observe sees it.
type ConnChange struct {
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
	s.up.observe(ConnChange{Conn: c.id, User: c.user, Session: c.session, From: a.From, To: a.To,
		Reason: a.Reason, Err: a.Err, At: time.Now(), Resumed: resumed})
}
