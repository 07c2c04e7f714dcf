//go:build !js

package coderws

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/policy"
	"github.com/heartbeat-go/heartbeat/transport"
	"github.com/heartbeat-go/heartbeat/transport/conformance"
)

const lifeBound = 5 * time.Second

// acceptedPair returns an accepted server Conn. A silent client never reads, so
// never answers a ping (nor a close frame).
func acceptedPair(t *testing.T, silent bool) *Conn {
	t.Helper()
	url, accepted := conformance.Serve(t, func(w http.ResponseWriter, r *http.Request) (*Conn, error) {
		return Accept(w, r, nil, Options{})
	})
	ctx, cancel := context.WithTimeout(context.Background(), lifeBound)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ws.CloseNow() })
	if !silent {
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				if _, _, err := ws.Read(context.Background()); err != nil {
					return
				}
			}
		}()
		t.Cleanup(func() { _ = ws.CloseNow(); <-done })
	}
	s := accepted()
	t.Cleanup(func() { _ = s.Close(nil) })
	return s
}

func fastServer() fsm.DriverConfig {
	return fsm.DriverConfig{Config: fsm.Config{
		Detector:        &policy.Fixed{SuspectAfter: 300 * time.Millisecond, DeadAfter: 600 * time.Millisecond},
		Interval:        &policy.Idle{Every: 100 * time.Millisecond},
		MinPingInterval: 20 * time.Millisecond,
	}}
}

// TestReadAfterConvictionWrapsTheCause: Read's error after a conviction is
// both transport.ErrClosed and fsm.ErrPeerSilent.
func TestReadAfterConvictionWrapsTheCause(t *testing.T) {
	s := acceptedPair(t, true)
	d, err := s.Watch(context.Background(), fastServer(), fsm.Presence{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx, cancel := context.WithTimeout(context.Background(), lifeBound)
	defer cancel()
	if _, _, err := s.Read(ctx); !errors.Is(err, transport.ErrClosed) || !errors.Is(err, fsm.ErrPeerSilent) {
		t.Errorf("Read after the conviction: %v, want ErrClosed and ErrPeerSilent", err)
	}
	<-d.Done()
	if !errors.Is(d.Err(), fsm.ErrPeerSilent) {
		t.Errorf("driver Err %v, want ErrPeerSilent", d.Err())
	}
}

// TestWatchCancelledContextClosesConn: a Watch whose context is already
// done closes the connection it never bound.
func TestWatchCancelledContextClosesConn(t *testing.T) {
	s := acceptedPair(t, false)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d, err := s.Watch(ctx, fastServer(), fsm.Presence{})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Done():
	case <-time.After(lifeBound):
		t.Fatal("the connection was not closed when the Watch context was cancelled")
	}
	<-d.Done()
	if _, _, err := s.Read(context.Background()); !errors.Is(err, transport.ErrClosed) || !errors.Is(err, context.Canceled) {
		t.Errorf("Read: %v, want ErrClosed wrapping context.Canceled", err)
	}
}

// TestServerCleanCloseIsNotADeath: a server that closes with 1000 sends a
// coder client straight to reconnecting (peer left), not through dead.
func TestServerCleanCloseIsNotADeath(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		_ = ws.Close(websocket.StatusNormalClosure, "bye")
	}))
	defer srv.Close()
	changes := make(chan fsm.Change, 16)
	cfg := fastServer()
	cfg.Backoff = &policy.Constant{Delay: time.Minute}
	cfg.Dialer = &Dialer{URL: "ws" + strings.TrimPrefix(srv.URL, "http")}
	cfg.OnChange = func(c fsm.Change) { changes <- c }
	d, err := fsm.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for {
		select {
		case c := <-changes:
			if c.To == fsm.Dead {
				t.Fatalf("a clean close reported as a death: %v", c)
			}
			if c.To != fsm.Reconnecting {
				continue
			}
			if c.From != fsm.Alive || c.Reason != fsm.ReasonPeerLeft || !errors.Is(c.Err, fsm.ErrPeerLeft) ||
				websocket.CloseStatus(c.Err) != websocket.StatusNormalClosure {
				t.Fatalf("got %v, want alive → reconnecting (peer left) with the 1000 close", c)
			}
			return
		case <-time.After(lifeBound):
			t.Fatal("the client never left alive")
		}
	}
}
