package presence_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/presence"
	"github.com/heartbeat-go/heartbeat/transport/gorillaws"
	"github.com/heartbeat-go/heartbeat/transport/wire/js"
)

// serve is the server of docs/presence.md, verbatim: a hub, its handler,
// and a graceful shutdown.
func serve(ctx context.Context, ln net.Listener, onEvent func(presence.Event)) error {
	hub, err := presence.NewHub(presence.HubConfig{
		OnEvent: onEvent, // join, leave, update: in order, each once
		Logger:  slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return err
	}
	ws, err := presence.NewHandler(presence.HandlerConfig{
		Hub: hub,
		Authenticate: func(r *http.Request) (presence.Identity, error) {
			user, ok := userFromCookie(r) // your authentication
			if !ok {
				return presence.Identity{}, errors.New("not signed in")
			}
			// heartbeat.js sends the tab's resume token on every dial: a
			// reload keeps the tab's session, a second tab gets its own.
			// The session is a digest of it, so events, snapshots and logs
			// never show the token that resumes it.
			session, err := js.SessionID(r)
			if err != nil || session == "" {
				return presence.Identity{}, &presence.StatusError{Code: http.StatusBadRequest, Err: errors.New("no resume token")}
			}
			return presence.Identity{User: user, Session: session}, nil
		},
		OnMessage: func(c *presence.Client, typ int, msg []byte) {
			// A write with a deadline: a peer that does not read holds
			// this connection's reader for at most that long.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = c.Write(ctx, typ, msg) // echo
		},
	})
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: ws, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	<-ctx.Done()
	// http.Server.Shutdown leaves hijacked WebSockets open: the hub closes
	// them with 1001 and the reconnect window, and waits for the leaves.
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	return hub.Shutdown(sctx)
}

func userFromCookie(r *http.Request) (string, bool) {
	c, err := r.Cookie("user")
	if err != nil {
		return "", false
	}
	return c.Value, true
}

// Example runs the docs' server on loopback, connects a client of this
// library as user ann, then closes the client and shuts the server down.
func Example() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	events := make(chan presence.Event, 16)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln, func(e presence.Event) { events <- e }) }()

	const tab = "tab-one_resume-token-1" // what heartbeat.js keeps per tab
	d, err := fsm.Run(context.Background(), fsm.DriverConfig{
		Dialer: &gorillaws.Dialer{
			URL:    "ws://" + ln.Addr().String() + "/?" + js.ResumeParam + "=" + tab,
			Header: http.Header{"Cookie": {"user=ann"}},
		},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(<-events) // the client's first heartbeat makes it alive
	fmt.Println(<-events)
	_ = d.Close() // a clean close: the session leaves at once
	fmt.Println(<-events)
	fmt.Println(<-events)
	stop()
	fmt.Println("shutdown:", <-done)
	// Output:
	// #1 user joined ann
	// #2 session joined ann/TV_IlI0gJ8dlP3g1
	// #3 session left ann/TV_IlI0gJ8dlP3g1 (closed)
	// #4 user left ann (closed)
	// shutdown: <nil>
}
