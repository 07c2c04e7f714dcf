// Package gorillaws puts a github.com/gorilla/websocket connection under
// the heartbeat.
//
// Wrap takes an established connection, client or server side. The Conn
// owns the read side: Bind starts a goroutine that reads every frame, so
// gorilla's ping and pong handlers run whether or not the application is
// reading (gorilla runs them only inside NextReader), and hands application
// messages to Read. Pongs are written by the heartbeat through WriteControl
// with the driver's write timeout, not by gorilla's default handler, which
// gives up after 1 s when the writer is busy; pings go through WriteControl
// too, so no write deadline is left behind for the application's writes.
//
// The server side, in an HTTP handler:
//
//	ws, err := upgrader.Upgrade(w, r, nil)
//	if err != nil {
//		return
//	}
//	c, err := gorillaws.Wrap(ws, gorillaws.Options{})
//	if err != nil {
//		return
//	}
//	d, err := c.Watch(ctx, fsm.DriverConfig{}, fsm.Presence{
//		Online:  func() { hub.join(id) },
//		Offline: func(ch fsm.Change) { hub.leave(id, ch.Reason) },
//	})
//	if err != nil {
//		return
//	}
//	defer d.Close()
//	for {
//		typ, msg, err := c.Read(ctx)
//		if err != nil {
//			return
//		}
//		handle(typ, msg)
//	}
//
// The client side dials through the heartbeat, which redials after a loss:
//
//	d, err := fsm.Run(ctx, fsm.DriverConfig{
//		Dialer:   &gorillaws.Dialer{URL: url, OnConnect: startApp},
//		OnChange: func(c fsm.Change) { log.Println(c) },
//	})
//
// Heartbeats are control frames unless the connection negotiated one of
// wire.Subprotocols(), in which case they are application-level messages
// (package wire) that a browser can read and answer.
//
// The steady heartbeat allocates nothing of its own, in the driver or here:
// what a ping/pong cycle allocates is gorilla's (WriteControl makes a frame
// buffer and a timer on every call, 800 B a cycle for both sides; binary
// heartbeats cost 64 B of NextReader's and NextWriter's structs).
// TestHeartbeatCycleAddsNoAllocation holds the adapter to gorilla's own
// figure; BenchmarkHeartbeatCycle measures it.
package gorillaws
