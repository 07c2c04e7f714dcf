package js_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/transport/gorillaws"
	"github.com/heartbeat-go/heartbeat/transport/wire"
	"github.com/heartbeat-go/heartbeat/transport/wire/js"
)

// A Go server serves its own browser client next to the WebSocket
// endpoint. Here a Go dialer plays the page: it offers JSON first, as a
// browser may, and reads the server's first heartbeat.
func Example() {
	mux := http.NewServeMux()
	mux.Handle("/hb/", http.StripPrefix("/hb", js.Handler())) // import "/hb/heartbeat.js"
	up := &websocket.Upgrader{Subprotocols: wire.Subprotocols()}
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		ws, err := gorillaws.Upgrade(up, w, r, nil) // the page's order of preference wins
		if err != nil {
			return // a page from another origin got 403; it sees close 1006
		}
		c, err := gorillaws.Wrap(ws, gorillaws.Options{ConnID: "c-1"})
		if err != nil {
			return
		}
		d, err := c.Watch(r.Context(), fsm.DriverConfig{
			// Every ping tells the page to spread its first redial over
			// this window if the connection is lost.
			Advice: func() time.Duration { return 2 * time.Second },
		}, fsm.Presence{Online: func() {}, Offline: func(fsm.Change) {}})
		if err != nil {
			return
		}
		defer d.Close()
		for {
			if _, _, err := c.Read(context.Background()); err != nil {
				return
			}
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/hb/heartbeat.js")
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
	fmt.Println(resp.Header.Get("Content-Type"))

	page := websocket.Dialer{Subprotocols: []string{wire.SubprotocolJSON, wire.SubprotocolBinary}}
	ws, _, err := page.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/ws?"+js.ResumeParam+"=AAAAAAAAAAAAAAAAAAAAAA", nil)
	if err != nil {
		panic(err)
	}
	defer ws.Close()
	fmt.Println(ws.Subprotocol())
	_, msg, err := ws.ReadMessage() // the server pings after 5 s of silence
	if err != nil {
		panic(err)
	}
	m, err := wire.DecodeJSON(msg)
	if err != nil {
		panic(err)
	}
	fmt.Println(m.Type, m.ConnID, m.Window)
	// Output:
	// text/javascript; charset=utf-8
	// heartbeat.v1.json
	// ping c-1 2s
}
