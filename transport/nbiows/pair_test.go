package nbiows

import (
	"context"
	"net"
	"net/http"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/heartbeat-go/heartbeat/transport/conformance"
	"github.com/heartbeat-go/heartbeat/transport/gorillaws"
)

// newServer starts a Server stopped when the test ends.
func newServer(t testing.TB, cfg ServerConfig) *Server {
	t.Helper()
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// pair connects a gorilla client to an nbiows server over loopback. dial,
// if set, wraps the client's TCP connection.
func pair(t testing.TB, s *Server, subprotocols []string, opts Options, dial func(net.Conn) net.Conn) (*Conn, *websocket.Conn) {
	t.Helper()
	url, accepted := conformance.Serve(t, func(w http.ResponseWriter, r *http.Request) (*Conn, error) {
		return s.Upgrade(w, r, opts)
	})
	client := conformance.DialGorilla(t, url, subprotocols, dial)
	server := accepted()
	t.Cleanup(func() { _ = server.Close(nil) })
	return server, client
}

func end(c *Conn) conformance.End {
	return conformance.End{
		Conn: c,
		Bind: c.Bind,
		SendData: func(ctx context.Context) error {
			return c.Write(ctx, TextMessage, []byte("data"))
		},
		Abort:             func() { _ = c.nc.Close() },
		PingsCarrySeq:     true,
		PingsCarryAdvice:  true,
		SendsPongs:        true,
		ReportsCleanClose: true,
	}
}

func gorillaEnd(c *gorillaws.Conn) conformance.End {
	return conformance.End{
		Conn:                c,
		Bind:                c.Bind,
		SendData:            func(ctx context.Context) error { return c.Write(ctx, websocket.TextMessage, []byte("data")) },
		Abort:               func() { _ = c.WebSocket().UnderlyingConn().Close() },
		PingsCarrySeq:       true,
		PingsCarryAdvice:    true,
		SendsPongs:          true,
		ReportsCleanClose:   true,
		CoalescesHeartbeats: true,
	}
}
