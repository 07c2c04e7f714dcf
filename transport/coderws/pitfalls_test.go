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

	"github.com/heartbeat-go/heartbeat/transport"
	"github.com/heartbeat-go/heartbeat/transport/conformance"
	"github.com/heartbeat-go/heartbeat/transport/wire"
)

// answeringServer is a coder server that reads (so it answers pings) until
// the client goes.
func answeringServer(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		for {
			if _, _, err := ws.Read(r.Context()); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

// TestPitfallPingNeedsReader (coder/websocket#226, #227): coder's
// Conn.Ping waits for a pong that only a concurrent reader can deliver; an
// application that is not reading has its ping time out although the peer
// answered. The adapter's read loop delivers the pong, and its Send does
// not wait for it.
func TestPitfallPingNeedsReader(t *testing.T) {
	url := answeringServer(t)
	t.Run("naive", func(t *testing.T) {
		ws, _, err := websocket.Dial(context.Background(), url, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.CloseNow()
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		if err := ws.Ping(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Ping without a reader: %v, want it to time out waiting for the pong", err)
		}
	})
	t.Run("adapter", func(t *testing.T) {
		h := NewHooks()
		ws, _, err := websocket.Dial(context.Background(), url, h.DialOptions(nil))
		if err != nil {
			t.Fatal(err)
		}
		c, err := Wrap(ws, h, Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(nil)
		r := conformance.NewRecorder()
		if err := c.Bind(r); err != nil {
			t.Fatal(err)
		}
		// The application never calls Read.
		for seq := uint64(1); seq <= 3; seq++ {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			err := c.Send(ctx, transport.Frame{Kind: transport.Ping, Seq: seq})
			cancel()
			if err != nil {
				t.Fatalf("Send ping %d: %v", seq, err)
			}
			if f := r.WaitFrame(t, transport.Pong); f.Seq != seq {
				t.Errorf("pong for ping %d carries Seq %d", seq, f.Seq)
			}
		}
	})
}

// TestMalformedHeartbeatKeepsConnection: a malformed application-level
// heartbeat is reported to OnMalformed as a *wire.Error, still counts as
// evidence, never reaches Read, and the connection goes on.
func TestMalformedHeartbeatKeepsConnection(t *testing.T) {
	bad := make(chan error, 4)
	s, c := pair(t, []string{wire.SubprotocolBinary}, Options{ConnID: "s"}, Options{OnMalformed: func(err error) { bad <- err }})
	rs, rc := conformance.NewRecorder(), conformance.NewRecorder()
	if err := s.Bind(rs); err != nil {
		t.Fatal(err)
	}
	if err := c.Bind(rc); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), conformance.Wait)
	defer cancel()
	// Claims a 60-byte connection ID and carries one byte of it.
	if err := s.WebSocket().Write(ctx, websocket.MessageBinary, []byte{0xFF, 'h', 1, 1, 1, 1, 0, 60, 'a'}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-bad:
		var we *wire.Error
		if !errors.As(err, &we) || !errors.Is(err, wire.ErrMalformed) {
			t.Errorf("OnMalformed got %v, want a *wire.Error wrapping ErrMalformed", err)
		}
	case <-time.After(conformance.Wait):
		t.Fatal("OnMalformed never called")
	}
	rc.WaitFrame(t, transport.Data) // still evidence
	if err := s.Write(ctx, websocket.MessageBinary, []byte("app")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := c.Read(ctx); err != nil || string(msg) != "app" {
		t.Errorf("Read after a malformed heartbeat: %q, %v; want the application message", msg, err)
	}
	if err := s.Send(ctx, transport.Frame{Kind: transport.Ping, Seq: 4}); err != nil {
		t.Fatal(err)
	}
	if f := rc.WaitFrame(t, transport.Ping); f.Seq != 4 {
		t.Errorf("ping after a malformed heartbeat: Seq %d", f.Seq)
	}
	if got := c.PeerID(); got != "s" {
		t.Errorf("client learned connection ID %q, want the server's %q", got, "s")
	}
	if err := c.Write(ctx, websocket.MessageBinary, []byte{0xFF, 'h', 'x'}); !errors.Is(err, ErrReservedPrefix) {
		t.Errorf("Write of a heartbeat-like message: %v, want ErrReservedPrefix", err)
	}
}
