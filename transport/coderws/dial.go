//go:build !js

package coderws

import (
	"context"
	"errors"
	"fmt"

	"github.com/coder/websocket"

	"github.com/heartbeat-go/heartbeat/transport"
	"github.com/heartbeat-go/heartbeat/transport/internal/wsconn"
)

// Dialer is the client role's transport.Dialer: each Dial opens a new coder
// connection with the hooks in place, wraps it and starts its read loop.
// It is safe for concurrent use.
type Dialer struct {
	// URL is the ws:// or wss:// address to dial. Required.
	URL string
	// DialOptions are coder's options (nil means defaults); the hooks are
	// added to a copy. To use application-level heartbeats, set their
	// Subprotocols to wire.Subprotocols() (the server picks one).
	DialOptions *websocket.DialOptions
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
		return nil, errors.New("coderws: Dialer needs a URL")
	}
	h := NewHooks()
	ws, resp, err := websocket.Dial(ctx, d.URL, h.DialOptions(d.DialOptions))
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("coderws: dial %s: %w", d.URL, err)
	}
	c, err := Wrap(ws, h, d.Options)
	if err != nil {
		_ = ws.CloseNow()
		return nil, err
	}
	return wsconn.Dialed(c, ev, d.OnConnect)
}
