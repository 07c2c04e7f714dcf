// Package nbiows serves WebSockets under the heartbeat without a goroutine
// per connection: a Server upgrades a net/http request, then hands the
// socket to an epoll loop (github.com/lesismal/nbio), which reads every
// connection and handles its frames inline (a ping steps the hub and its
// pong is written without waking another goroutine); application messages
// go to a bounded pool of workers, one at a time per connection and in
// order, so a slow application delays no heartbeat. An idle connection
// costs its socket and its state; nothing waits on it.
//
// A Conn is a presence.Conn: the presence hub watches it like a gorilla or
// coder connection, its timers on the hub's shared wheels, its pongs
// written inline from the worker that read the ping.
//
//	srv, _ := nbiows.NewServer(nbiows.ServerConfig{})
//	http.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
//		id := hub.NewConnID()
//		c, err := srv.Upgrade(w, r, nbiows.Options{ConnID: id})
//		if err != nil {
//			return // answered
//		}
//		_, _ = hub.Watch(c, id, identity) // returns at once; so does the handler
//	})
//
// presence/nbiohandler does this, with authentication and callbacks.
//
// Writes never block. What the socket does not take at once waits in the
// connection's write queue, which is bounded (nbio's own is not):
// ServerConfig.MaxWriteQueue bytes, 64 KiB by default, counted exactly
// from what nbio reports written. A write that would pass the bound fails
// with ErrWriteQueueFull, the connection is closed with 1008 and that
// reason, and Stats.Overflows counts it; a peer that does not read costs
// at most the bound and delays nobody else.
//
// Partial frames are kept by nbio's parser between reads, so a peer that
// sends a frame a byte at a time is read correctly. The upgrade handshake
// runs on net/http's goroutine, so a slow client or a slow authentication
// holds no poller or worker. Only plain TCP connections can be handed to
// the poller: net/http's TLS connections cannot (ErrNotTCP). For TLS, let
// the Server listen itself (ServerConfig.Addr, TLSConfig: nbio's own TLS),
// or terminate TLS in front; docs/presence-cost.md has its cost per
// connection.
//
// An OnData that blocks holds a worker and this connection's next
// messages (not its heartbeats); callbacks on the poller (the Events,
// OnMessage, OnMalformed) must never block.
package nbiows
