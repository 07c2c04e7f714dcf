package integrating

import (
	"context"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/policy"
	"github.com/heartbeat-go/heartbeat/transport/coderws"
	"github.com/heartbeat-go/heartbeat/transport/gorillaws"
)

// presetClient runs the client of "Applying a preset" until the server
// reports the connection.
func presetClient(ctx context.Context, connected <-chan struct{}) error {
	p, err := policy.Lookup("adaptive@socketio")
	if err != nil {
		return err
	}
	set := p.Client(rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))) // math/rand/v2
	d, err := fsm.Run(ctx, fsm.DriverConfig{
		Config: fsm.Config{Detector: set.Detector, Interval: set.Interval, Backoff: set.Backoff},
		Dialer: &coderws.Dialer{URL: "wss://example.com/ws"},
	})
	if err != nil {
		return err
	}
	defer d.Close()
	select {
	case <-connected:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func TestPresetClient(t *testing.T) {
	connected := make(chan struct{}, 1)
	echoTLS(t, func(w http.ResponseWriter, r *http.Request) {
		ws, err := coderws.Accept(w, r, nil, coderws.Options{})
		if err != nil {
			return
		}
		connected <- struct{}{}
		_ = ws.Close(nil)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := presetClient(ctx, connected); err != nil {
		t.Fatal(err)
	}
}

var preset, _ = policy.Lookup("adaptive@socketio")

// presetHandler is a handler of "Applying a preset".
func presetHandler(w http.ResponseWriter, r *http.Request, presence fsm.Presence) {
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c, err := gorillaws.Wrap(ws, gorillaws.Options{})
	if err != nil {
		return
	}
	set := preset.Server(rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())))
	d, err := c.Watch(r.Context(), fsm.DriverConfig{
		Config: fsm.Config{Detector: set.Detector, Interval: set.Interval},
	}, presence)
	if err != nil {
		return
	}
	defer d.Close()
	for {
		if _, _, err := c.Read(r.Context()); err != nil {
			return
		}
	}
}

func TestPresetServer(t *testing.T) {
	online := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		presetHandler(w, r, fsm.Presence{Online: func() { online <- struct{}{} }, Offline: func(fsm.Change) {}})
	}))
	defer srv.Close()
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	select {
	case <-online:
	case <-time.After(10 * time.Second):
		t.Fatal("the preset server never saw the peer online")
	}
}
