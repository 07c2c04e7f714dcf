//go:build !js

package coderws

import (
	"context"
	"errors"
	"net/http"
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
