package coderws_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/heartbeat-go/heartbeat/transport/coderws"
	"github.com/heartbeat-go/heartbeat/transport/wire"
)

// coder's Accept, like gorilla's Upgrader, takes the first of the server's
// list that the client offered; coderws.Accept honours the client's order.
func TestAcceptHonoursClientOrder(t *testing.T) {
	opts := &websocket.AcceptOptions{Subprotocols: wire.Subprotocols()}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := coderws.Accept(w, r, opts, coderws.Options{})
		if err == nil {
			_ = c.WebSocket().CloseNow()
		}
	}))
	defer srv.Close()
	for _, c := range []struct {
		offered []string
		want    string
	}{
		{[]string{wire.SubprotocolJSON, wire.SubprotocolBinary}, wire.SubprotocolJSON},
		{[]string{wire.SubprotocolBinary, wire.SubprotocolJSON}, wire.SubprotocolBinary},
		{[]string{"chat", wire.SubprotocolJSON}, wire.SubprotocolJSON},
		{[]string{"chat"}, ""},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), &websocket.DialOptions{Subprotocols: c.offered})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if got := ws.Subprotocol(); got != c.want {
			t.Errorf("offered %q: chose %q, want %q", c.offered, got, c.want)
		}
		_ = ws.CloseNow()
	}
	if opts.Subprotocols[0] != wire.SubprotocolBinary {
		t.Errorf("Accept changed the caller's options: %q", opts.Subprotocols)
	}
}
