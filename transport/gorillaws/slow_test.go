package gorillaws_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/heartbeat-go/heartbeat/transport/conformance"
	"github.com/heartbeat-go/heartbeat/transport/gorillaws"
)

// A peer flooding an application that reads nothing: the read loop stops
// past Options.QueueBytes and TCP holds the peer back.
func TestSlowConsumer(t *testing.T) {
	conformance.RunSlowConsumer(t, conformance.SlowConsumer{
		Serve: func(t *testing.T, handle func([]byte)) (string, func() conformance.End) {
			url, accepted := conformance.Serve(t, func(w http.ResponseWriter, r *http.Request) (*gorillaws.Conn, error) {
				ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
				if err != nil {
					return nil, err
				}
				return gorillaws.Wrap(ws, gorillaws.Options{})
			})
			return url, func() conformance.End {
				c := accepted()
				t.Cleanup(func() { _ = c.Close(nil) })
				go func() {
					for {
						_, data, err := c.Read(context.Background())
						if err != nil {
							return
						}
						handle(data)
					}
				}()
				return conformance.End{Conn: c, Bind: c.Bind}
			}
		},
	})
}
