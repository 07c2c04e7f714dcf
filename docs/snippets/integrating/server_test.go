// Package integrating runs the Go snippets of docs/integrating.md (see
// docs/snippets_test.go).
package integrating

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/transport/gorillaws"
	"github.com/heartbeat-go/heartbeat/transport/wire"
)

// roomT is the application's own state the server snippet reports to.
type roomT struct {
	mu     sync.Mutex
	joined []string
	msgs   chan string
	join   chan struct{}
}

func (h *roomT) Join(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.joined = append(h.joined, id)
	h.join <- struct{}{}
}

func (h *roomT) Leave(id string, why fsm.Reason) {}

func (h *roomT) Handle(id string, typ int, msg []byte) { h.msgs <- id + ":" + string(msg) }

var (
	myRoom   = &roomT{msgs: make(chan string, 1), join: make(chan struct{}, 1)}
	id       = "c-42"
	upgrader = websocket.Upgrader{}
)

func handle(w http.ResponseWriter, r *http.Request) {
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c, err := gorillaws.Wrap(ws, gorillaws.Options{})
	if err != nil {
		return
	}
	// r.Context() ends when the handler returns, and the connection with
	// it: the handler blocks in its read loop below for the connection's
	// life. A handler that returns at once must pass a longer-lived context.
	// myRoom is your application's own state, not library API (for a
	// presence hub with sessions and resume, see presence.Hub).
	d, err := c.Watch(r.Context(), fsm.DriverConfig{}, fsm.Presence{
		Online:  func() { myRoom.Join(id) },
		Offline: func(ch fsm.Change) { myRoom.Leave(id, ch.Reason) },
	})
	if err != nil {
		return
	}
	defer d.Close()
	for {
		typ, msg, err := c.Read(r.Context())
		if err != nil {
			return
		}
		myRoom.Handle(id, typ, msg)
	}
}

// The server snippet on loopback: the peer joins the room, its message is
// handled, and the handler returns when it leaves.
func TestServerSnippet(t *testing.T) {
	returned := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(returned)
		handle(w, r)
	}))
	defer srv.Close()
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.WriteMessage(websocket.TextMessage, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-myRoom.msgs:
		if m != "c-42:hi" {
			t.Fatalf("myRoom.Handle got %q", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the message never reached the room")
	}
	select {
	case <-myRoom.join:
	case <-time.After(10 * time.Second):
		t.Fatal("the connected peer never joined the room")
	}
	_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	_ = ws.Close()
	select {
	case <-returned:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler did not return after the client left")
	}
	myRoom.mu.Lock()
	defer myRoom.mu.Unlock()
	if len(myRoom.joined) != 1 || myRoom.joined[0] != id {
		t.Fatalf("joined = %v, want [%s]", myRoom.joined, id)
	}
}

// The gorilla half of "Browsers: the application-level heartbeat": a client
// offering heartbeat.v1.json gets the JSON heartbeat.
func TestSubprotocolGorilla(t *testing.T) {
	upgrader := websocket.Upgrader{Subprotocols: wire.Subprotocols()} // gorilla
	formats := make(chan wire.Format, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		c, err := gorillaws.Wrap(ws, gorillaws.Options{})
		if err != nil {
			return
		}
		formats <- c.Format()
	}))
	defer srv.Close()
	d := websocket.Dialer{Subprotocols: []string{wire.SubprotocolJSON}}
	ws, _, err := d.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if f := <-formats; f != wire.JSON {
		t.Fatalf("server format %v, want %v", f, wire.JSON)
	}
}
