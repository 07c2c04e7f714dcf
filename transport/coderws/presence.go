//go:build !js

package coderws

import (
	"context"

	"github.com/heartbeat-go/heartbeat/fsm"
)

// Presence reports whether a server-side connection's peer is there.
type Presence struct {
	// Online, if set, is called once, when the connection is first alive.
	Online func()
	// Offline, if set, is called once, after Online, when the peer is dead
	// or the connection closed; the change says why (fsm.ReasonPingFlood,
	// fsm.ReasonUnanswered, fsm.ReasonPeerClosed, ...). A suspect peer is
	// still online: presence does not flap while the heartbeat probes.
	Offline func(fsm.Change)
}

// onChange wraps next with the presence reports.
func (p Presence) onChange(next func(fsm.Change)) func(fsm.Change) {
	online, offline := false, false // the driver calls OnChange from one goroutine
	return func(ch fsm.Change) {
		if next != nil {
			next(ch)
		}
		switch {
		case ch.To == fsm.Alive && !online:
			online = true
			if p.Online != nil {
				p.Online()
			}
		case (ch.To == fsm.Dead || ch.To == fsm.Closed) && online && !offline:
			offline = true
			if p.Offline != nil {
				p.Offline(ch)
			}
		}
	}
}

// Watch runs the heartbeat's server role on c, an accepted connection,
// and reports presence. cfg's Role and Dialer are set for you; cfg.OnChange
// still sees every change, before the presence callbacks. The driver ends
// when the peer is dead or the connection is closed; c is closed then.
//
// Flood protection comes with the driver: a peer that pings faster than
// cfg.MinPingInterval (default fsm.DefaultMinPingInterval, 100 ms) beyond a
// burst of cfg.PingBurst (default fsm.DefaultPingBurst, 50) is closed with
// fsm.ErrPingFlood, which the peer receives as close code 1008 with that
// text.
func (c *Conn) Watch(ctx context.Context, cfg fsm.DriverConfig, p Presence) (*fsm.Driver, error) {
	cfg.Role = fsm.Server
	cfg.Dialer = c.Accepted()
	cfg.OnChange = p.onChange(cfg.OnChange)
	d, err := fsm.Run(ctx, cfg)
	if err != nil {
		_ = c.Close(err)
		return nil, err
	}
	return d, nil
}
