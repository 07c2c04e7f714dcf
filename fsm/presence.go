package fsm

// Presence turns the state changes of a server-side connection into
// online and offline reports, the shape a chat or a dashboard needs.
type Presence struct {
	// Online, if set, is called once, when the connection is first alive.
	Online func()
	// Offline, if set, is called once, after Online, when the peer is dead
	// or the connection closed; the change says why (ReasonPeerLeft for a
	// clean close by the peer, ReasonPeerClosed for a connection that broke,
	// ReasonUnanswered, ReasonPingFlood, ReasonUserClose, ...). A suspect
	// peer is still online: presence does not flap while the heartbeat
	// probes.
	Offline func(Change)
}

// OnChange returns a DriverConfig.OnChange that calls next (if not nil) with
// every change and then reports presence. Use one per connection.
func (p Presence) OnChange(next func(Change)) func(Change) {
	online, offline := false, false // the driver calls OnChange from one goroutine
	return func(c Change) {
		if next != nil {
			next(c)
		}
		switch {
		case c.To == Alive && !online:
			online = true
			if p.Online != nil {
				p.Online()
			}
		case (c.To == Dead || c.To == Closed) && online && !offline:
			offline = true
			if p.Offline != nil {
				p.Offline(c)
			}
		}
	}
}
