package gorillaws_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heartbeat-go/heartbeat/transport"
	"github.com/heartbeat-go/heartbeat/transport/gorillaws"
	"github.com/heartbeat-go/heartbeat/transport/wire"
)

// negotiated dials a server that upgrades with upgrade, offering offered,
// and returns the subprotocol the server chose.
func negotiated(t *testing.T, upgrade func(w http.ResponseWriter, r *http.Request) (*websocket.Conn, error), offered []string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := upgrade(w, r)
		if err == nil {
			_ = ws.Close()
		}
	}))
	defer srv.Close()
	d := websocket.Dialer{Subprotocols: offered}
	ws, _, err := d.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	return ws.Subprotocol()
}

// gorilla's Upgrader picks the first of its own list that the client
// offered, so a server listing wire.Subprotocols() gave binary heartbeats to
// a browser that asked for JSON first. Upgrade honours the client's order.
func TestUpgradeHonoursClientOrder(t *testing.T) {
	up := &websocket.Upgrader{Subprotocols: wire.Subprotocols()}
	plain := func(w http.ResponseWriter, r *http.Request) (*websocket.Conn, error) { return up.Upgrade(w, r, nil) }
	fixed := func(w http.ResponseWriter, r *http.Request) (*websocket.Conn, error) {
		return gorillaws.Upgrade(up, w, r, nil)
	}
	jsonFirst := []string{wire.SubprotocolJSON, wire.SubprotocolBinary}
	if got := negotiated(t, plain, jsonFirst); got != wire.SubprotocolBinary {
		t.Fatalf("gorilla's own choice is %q; the pitfall this test documents is gone", got)
	}
	for _, c := range []struct {
		offered []string
		want    string
	}{
		{jsonFirst, wire.SubprotocolJSON},
		{[]string{wire.SubprotocolBinary, wire.SubprotocolJSON}, wire.SubprotocolBinary},
		{[]string{"chat", wire.SubprotocolJSON}, wire.SubprotocolJSON},
		{[]string{"chat"}, ""},
		{nil, ""},
	} {
		if got := negotiated(t, fixed, c.offered); got != c.want {
			t.Errorf("offered %q: chose %q, want %q", c.offered, got, c.want)
		}
	}
	if len(up.Subprotocols) != 2 || up.Subprotocols[0] != wire.SubprotocolBinary {
		t.Errorf("Upgrade changed the caller's Upgrader: %q", up.Subprotocols)
	}
}

// A message over the read limit closes the connection with 1009 and a
// reason that says so (gorilla's own check sends an empty reason).
func TestReadLimitCloseHasReason(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		c, err := gorillaws.Wrap(ws, gorillaws.Options{ReadLimit: 100})
		if err != nil {
			return
		}
		ev := &endEvents{end: make(chan error, 1)}
		if err := c.Bind(ev); err != nil {
			return
		}
		select { // the driver's part: when the read loop ends, close
		case err = <-ev.end:
		case <-time.After(5 * time.Second):
		}
		_ = c.Close(err)
	}))
	defer srv.Close()
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := ws.WriteMessage(websocket.TextMessage, make([]byte, 101)); err != nil {
		t.Fatal(err)
	}
	_, _, err = ws.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseMessageTooBig || !strings.Contains(ce.Text, "100 bytes") {
		t.Fatalf("read %v, want close 1009 naming the limit", err)
	}
}

type endEvents struct{ end chan error }

func (endEvents) Frame(transport.Frame) {}
func (e *endEvents) Closed(err error)   { e.end <- err }
