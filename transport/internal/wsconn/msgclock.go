package wsconn

import (
	"sync"
	"time"
)

// DefaultMessageTimeout bounds reading one message once its first frame
// has arrived: a read limit's worth (1 MiB) over a 300 kbit/s uplink fits,
// a message of empty fragments that never ends does not.
const DefaultMessageTimeout = 30 * time.Second

// MessageClock bounds how long one inbound message may take to arrive in
// full. The libraries read every frame of a message inside one call (a
// stream of empty fragments never returns to the adapter), so only a
// timer can end it. One timer per connection, reset per message: no
// allocation per message.
type MessageClock struct {
	d       time.Duration
	expire  func() // closes the connection so that the blocked read returns
	mu      sync.Mutex
	t       *time.Timer
	active  bool // a message is being timed: a late fire of a stopped timer does nothing
	expired bool
}

// NewMessageClock returns a clock that calls expire when a message runs
// past d; nil when d is negative (no bound). Zero d means
// DefaultMessageTimeout.
func NewMessageClock(d time.Duration, expire func()) *MessageClock {
	if d < 0 {
		return nil
	}
	if d == 0 {
		d = DefaultMessageTimeout
	}
	return &MessageClock{d: d, expire: expire}
}

// Start starts timing a message whose first frame has arrived.
func (m *MessageClock) Start() {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.active = true
	if m.t == nil {
		m.t = time.AfterFunc(m.d, m.fire)
		return
	}
	m.t.Reset(m.d)
}

// Stop ends timing the message; it reports whether the message had
// already run out of time (the read's error then means that).
func (m *MessageClock) Stop() (expired bool) {
	if m == nil {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.active = false
	if m.t != nil {
		m.t.Stop()
	}
	return m.expired
}

// Timeout is the bound.
func (m *MessageClock) Timeout() time.Duration { return m.d }

func (m *MessageClock) fire() {
	m.mu.Lock()
	if !m.active { // stopped while this fire waited for the lock
		m.mu.Unlock()
		return
	}
	m.expired = true
	m.mu.Unlock()
	m.expire()
}
