package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/heartbeat-go/heartbeat/examples/internal/outputtest"
	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/transport/gorillaws"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestClient runs the client against a gorilla echo server on loopback:
// it comes alive and its messages are echoed.
func TestClient(t *testing.T) {
	var conns sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		c, _ := gorillaws.Wrap(ws, gorillaws.Options{})
		d, err := c.Watch(ctx, fsm.DriverConfig{}, fsm.Presence{})
		if err != nil {
			return
		}
		conns.Go(func() {
			defer d.Close()
			for {
				typ, msg, err := c.Read(ctx)
				if err != nil || c.Write(ctx, typ, msg) != nil {
					return
				}
			}
		})
	}))
	out := outputtest.New()
	done := make(chan error, 1)
	go func() { done <- run(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", 20*time.Millisecond, out) }()
	out.WaitFor(t, "connecting → alive (connected)")
	out.WaitFor(t, "echo: hello 2")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	conns.Wait()
	srv.Close()
}

// TestClientShutdown: Ctrl-C (ctx cancelled) ends the client promptly with
// a live server, which reads the client's close frame, and with a frozen
// one, which accepted the connection and then stopped reading (no pong, no
// answer to the close frame): coder's close handshake would wait 5 s for
// it; the client bounds the wait at its close timeout.
func TestClientShutdown(t *testing.T) {
	for _, frozen := range []bool{false, true} {
		name := map[bool]string{false: "live", true: "frozen"}[frozen]
		t.Run(name, func(t *testing.T) {
			unfreeze := make(chan struct{})
			closed := make(chan error, 1)
			var handlers sync.WaitGroup
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				handlers.Add(1)
				defer handlers.Done()
				ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
				if err != nil {
					return
				}
				defer ws.Close()
				if frozen {
					<-unfreeze // reads nothing: pings and the close frame sit unanswered
					return
				}
				for {
					if _, _, err := ws.ReadMessage(); err != nil {
						closed <- err
						return
					}
				}
			}))
			defer srv.Close()
			defer handlers.Wait()
			defer close(unfreeze)
			out := outputtest.New()
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- run(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", time.Hour, out) }()
			out.WaitFor(t, "connecting → alive (connected)")
			cancel()
			// The bound is the client's close timeout plus room for a
			// loaded machine, well under coder's 5 s handshake wait.
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(closeTimeout + 2*time.Second):
				t.Fatalf("the client was still shutting down %v after Ctrl-C", closeTimeout+2*time.Second)
			}
			if !frozen {
				var ce *websocket.CloseError
				if err := <-closed; !errors.As(err, &ce) {
					t.Fatalf("the server read %v, want the client's close frame", err)
				}
			}
		})
	}
}
