// Package presence knows who is online — users, their sessions, and the
// connections that hold them — on the server side, without flapping.
//
// # The registry
//
// Registry is sans-I/O like fsm.Machine: it is handed what happened to
// connections, with the time, and returns join, leave and update events;
// Deadline says when to wake it. A session outlives its last connection for
// a resume window, so a reconnect, a second tab or a new connection that
// overtakes a silent old one is not a leave:
//
//	reg, _ := presence.NewRegistry(presence.RegistryConfig{})
//	var evs []presence.Event
//	evs = reg.Step(now, presence.RegistryInput{Kind: presence.ConnAlive, Conn: "c1", User: "ann", Session: "tab-1"}, evs[:0])
//	// evs: user joined ann, session joined ann/tab-1
//	evs = reg.Step(now, presence.RegistryInput{Kind: presence.ConnLost, Conn: "c1"}, evs[:0])
//	// evs: none — ann/tab-1 waits for a reconnect until reg.Deadline()
//
// # The hub
//
// Hub is the registry's driver for a server: it runs the heartbeat
// (fsm.Machine, server role) of many connections on a few shards with shared
// timer wheels — no goroutine, channel, context or timer per connection —
// feeds their verdicts to the registry, and delivers the events in order.
// Handler wraps it for gorilla/websocket servers.
package presence
