package gorillaws

import (
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
	client = conformance.DialGorilla(t, url, subprotocols, dial)
	server = accepted()
	t.Cleanup(func() { _ = server.Close() })
	return server, client
}
