package nbiows

import (
	"testing"

	"github.com/heartbeat-go/heartbeat/transport"
	"github.com/heartbeat-go/heartbeat/transport/conformance"
	"github.com/heartbeat-go/heartbeat/transport/gorillaws"
	"github.com/heartbeat-go/heartbeat/transport/wire"
)

// TestConformance runs the suite on an nbiows server with a gorilla
// client, in each heartbeat format.
func TestConformance(t *testing.T) {
	s := newServer(t, ServerConfig{})
	conformance.RunFormats(t, "nbio-server+gorilla-client", func(t *testing.T, f wire.Format, subs []string) (a, b conformance.End) {
		sc, ws := pair(t, s, subs, Options{ConnID: "c-1"}, nil)
		c, err := gorillaws.Wrap(ws, gorillaws.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if sc.Format() != f || c.Format() != f {
			t.Fatalf("negotiated %v/%v, want %v", sc.Format(), c.Format(), f)
		}
		return end(sc), gorillaEnd(c)
	})
}

var _ transport.Conn = (*Conn)(nil)
