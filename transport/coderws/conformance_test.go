//go:build !js

package coderws

import (
	"context"
	"net/http"
	"testing"

	"github.com/coder/websocket"

	"github.com/heartbeat-go/heartbeat/transport"
	"github.com/heartbeat-go/heartbeat/transport/conformance"
	"github.com/heartbeat-go/heartbeat/transport/wire"
)

// pair connects a coder client to a coder server over loopback, both
// wrapped.
func pair(t *testing.T, subprotocols []string, so, co Options) (server, client *Conn) {
	t.Helper()
	url, accepted := conformance.Serve(t, func(w http.ResponseWriter, r *http.Request) (*Conn, error) {
		return Accept(w, r, &websocket.AcceptOptions{Subprotocols: subprotocols}, so)
	})
	h := NewHooks()
	ctx, cancel := context.WithTimeout(context.Background(), conformance.Wait)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, url, h.DialOptions(&websocket.DialOptions{Subprotocols: subprotocols}))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if resp.Body != nil {
		_ = resp.Body.Close()
	}
	client, err = Wrap(ws, h, co)
	if err != nil {
		t.Fatal(err)
	}
	server = accepted()
	t.Cleanup(func() {
		_ = client.Close(nil)
		_ = server.Close(nil)
	})
	return server, client
}

func end(c *Conn) conformance.End {
	app := c.Format() != wire.Control
	return conformance.End{
		Conn: c,
		Bind: c.Bind,
		SendData: func(ctx context.Context) error {
			return c.Write(ctx, websocket.MessageText, []byte("data"))
		},
		Abort: func() { _ = c.WebSocket().CloseNow() },
		// coder chooses its own ping payload and answers pings itself;
		// application-level heartbeats carry everything.
		PingsCarrySeq:     app,
		PingsCarryAdvice:  app,
		SendsPongs:        app,
		ReportsCleanClose: true,
	}
}

func TestConformance(t *testing.T) {
	conformance.RunFormats(t, "coder", func(t *testing.T, f wire.Format, subs []string) (a, b conformance.End) {
		s, c := pair(t, subs, Options{ConnID: "c-1"}, Options{})
		if s.Format() != f || c.Format() != f {
			t.Fatalf("negotiated %v/%v, want %v", s.Format(), c.Format(), f)
		}
		return end(s), end(c)
	})
}

var _ transport.Conn = (*Conn)(nil)
