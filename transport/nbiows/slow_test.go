package nbiows

import (
	"net/http"
	"testing"

	"github.com/heartbeat-go/heartbeat/transport/conformance"
)

// A peer flooding an OnData that takes nothing: nbio cannot stop reading
// one connection, so the read queue's bound closes it with 1008.
func TestSlowConsumer(t *testing.T) {
	conformance.RunSlowConsumer(t, conformance.SlowConsumer{
		Closes: true,
		Serve: func(t *testing.T, handle func([]byte)) (string, func() conformance.End) {
			s := newServer(t, ServerConfig{})
			url, accepted := conformance.Serve(t, func(w http.ResponseWriter, r *http.Request) (*Conn, error) {
				return s.Upgrade(w, r, Options{OnData: func(_ int, data []byte) { handle(data) }})
			})
			return url, func() conformance.End {
				c := accepted()
				t.Cleanup(func() { _ = c.Close(nil) })
				return conformance.End{Conn: c, Bind: c.Bind}
			}
		},
	})
}
