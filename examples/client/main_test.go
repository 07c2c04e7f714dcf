package main

import (
	"context"
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
