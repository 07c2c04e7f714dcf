package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/transport/gorillaws"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// output is an io.Writer that tells when it contains a string.
type output struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	wake chan struct{}
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
	return o.buf.Write(p)
}

func (o *output) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		o.mu.Lock()
		ok := strings.Contains(o.buf.String(), s)
		o.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-o.wake:
		case <-deadline:
			t.Fatalf("no %q in output:\n%s", s, o.buf.String())
		}
	}
}

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
	out := &output{wake: make(chan struct{}, 1)}
	done := make(chan error, 1)
	go func() { done <- run(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", 20*time.Millisecond, out) }()
	out.waitFor(t, "connecting → alive (connected)")
	out.waitFor(t, "echo: hello 2")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	conns.Wait()
	srv.Close()
}
