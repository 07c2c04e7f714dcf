//go:build !js

package coderws

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
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
	accepted := make(chan *Conn, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := Accept(w, r, &websocket.AcceptOptions{Subprotocols: subprotocols}, so)
		if err != nil {
			t.Errorf("accept: %v", err)
			close(accepted)
			return
		}
		accepted <- c
	}))
	t.Cleanup(srv.Close)
	h := NewHooks()
	ctx, cancel := context.WithTimeout(context.Background(), conformance.Wait)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), h.DialOptions(&websocket.DialOptions{Subprotocols: subprotocols}))
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
	server = <-accepted
	if server == nil {
		t.FailNow()
	}
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
		PingsCarrySeq:    app,
		PingsCarryAdvice: app,
		SendsPongs:       app,
	}
}

func TestConformance(t *testing.T) {
	for _, f := range []wire.Format{wire.Control, wire.JSON, wire.Binary} {
		conformance.Run(t, conformance.Harness{
			Name: "coder-" + f.String(),
			NewPair: func(t *testing.T) (a, b conformance.End) {
				var subs []string
				if f != wire.Control {
					subs = []string{f.Subprotocol()}
				}
				s, c := pair(t, subs, Options{ConnID: "c-1"}, Options{})
				if s.Format() != f || c.Format() != f {
					t.Fatalf("negotiated %v/%v, want %v", s.Format(), c.Format(), f)
				}
				return end(s), end(c)
			},
		})
	}
}

var _ transport.Conn = (*Conn)(nil)
