package gorillaws

import (
	"context"
	"net"
	"net/http"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/heartbeat-go/heartbeat/transport/conformance"
)

// wsPair connects a gorilla client to a gorilla server over loopback and
// returns both raw connections. dial, if set, wraps the client's TCP
// connection (to inject faults).
func wsPair(t testing.TB, subprotocols []string, dial func(net.Conn) net.Conn) (server, client *websocket.Conn) {
	t.Helper()
	up := websocket.Upgrader{Subprotocols: subprotocols}
	url, accepted := conformance.Serve(t, func(w http.ResponseWriter, r *http.Request) (*websocket.Conn, error) {
		return up.Upgrade(w, r, nil)
	})
	d := websocket.Dialer{Subprotocols: subprotocols}
	if dial != nil {
		d.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return dial(c), nil
		}
	}
	client, resp, err := d.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	_ = resp.Body.Close()
	server = accepted()
	t.Cleanup(func() {
		_ = client.Close()
		_ = server.Close()
	})
	return server, client
}
