// Package coderws puts a github.com/coder/websocket connection under the
// heartbeat.
//
// coder reports ping and pong frames only through the OnPingReceived and
// OnPongReceived options given to Accept or Dial, so the hooks go in first:
// Accept and Dialer do it for you; with your own Accept or Dial call, use
// NewHooks and its AcceptOptions or DialOptions, then Wrap. The Conn owns
// the read side: Bind starts a goroutine that reads every frame, which is
// what coder needs to answer pings and to deliver the pongs its Conn.Ping
// waits for (without a concurrent reader, Ping blocks until its context
// ends). Application messages are handed to Read. A heartbeat ping runs
// coder's Conn.Ping on its own goroutine, so Send never waits for a pong.
//
// The server side, in an HTTP handler:
//
//	c, err := coderws.Accept(w, r, nil, coderws.Options{})
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
//		Dialer:   &coderws.Dialer{URL: url, OnConnect: startApp},
//		OnChange: func(c fsm.Change) { log.Println(c) },
//	})
//
// coder picks its own ping payload and answers pings itself, so with
// control frames a ping cannot carry the server's reconnect-window advice;
// negotiate one of wire.Subprotocols() for application-level heartbeats
// when that matters. This package does not build for js/wasm, where coder
// cannot ping at all.
package coderws
