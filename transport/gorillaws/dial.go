package gorillaws

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/gorilla/websocket"

	"github.com/heartbeat-go/heartbeat/transport"
	"github.com/heartbeat-go/heartbeat/transport/internal/wsconn"
	"github.com/heartbeat-go/heartbeat/transport/wire"
)

// Dialer is the client role's transport.Dialer: each Dial opens a new
// gorilla connection, wraps it and starts its read loop. It is safe for
// concurrent use.
type Dialer struct {
	// URL is the ws:// or wss:// address to dial. Required.
	URL string
	// Header is sent with the handshake.
	Header http.Header
	// Dialer dials; nil means websocket.DefaultDialer. To use
	// application-level heartbeats, set its Subprotocols to
	// wire.Subprotocols() (the server picks one).
	Dialer *websocket.Dialer
	// Options configure each connection.
	Options Options
	// OnConnect, if set, is called with every new connection once it is
	// bound, on the heartbeat's goroutine: start the application's reader
	// and writer here (in their own goroutines) and return.
	OnConnect func(*Conn)
}

// Dial implements transport.Dialer.
func (d *Dialer) Dial(ctx context.Context, ev transport.Events) (transport.Conn, error) {
	if d.URL == "" {
		return nil, errors.New("gorillaws: Dialer needs a URL")
	}
	wsd := d.Dialer
	if wsd == nil {
		wsd = websocket.DefaultDialer
	}
	ws, resp, err := wsd.DialContext(ctx, d.URL, d.Header)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("gorillaws: dial %s: %w", d.URL, err)
	}
	c, err := Wrap(ws, d.Options)
	if err != nil {
		_ = ws.Close()
		return nil, err
	}
	return wsconn.Dialed(c, ev, d.OnConnect)
}

// Upgrade upgrades an HTTP request with up, choosing the subprotocol in the
// client's order of preference among up.Subprotocols (gorilla's own
// Upgrade takes the first of up.Subprotocols that the client offered, so
// a browser asking for wire.SubprotocolJSON first would get binary
// heartbeats from a server listing wire.Subprotocols()). up is not
// modified. A cross-origin request fails up.CheckOrigin (by default: the
// Origin header's host must equal the request's Host) with 403, which the
// browser reports only as close 1006.
func Upgrade(up *websocket.Upgrader, w http.ResponseWriter, r *http.Request, responseHeader http.Header) (*websocket.Conn, error) {
	u := *up
	if u.Subprotocols != nil {
		u.Subprotocols = wire.ClientOrder(websocket.Subprotocols(r), u.Subprotocols)
	}
	return u.Upgrade(w, r, responseHeader)
}
