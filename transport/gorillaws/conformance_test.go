package gorillaws

import (
	"context"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/heartbeat-go/heartbeat/transport"
	"github.com/heartbeat-go/heartbeat/transport/conformance"
	"github.com/heartbeat-go/heartbeat/transport/wire"
)

// End describes c for the conformance suite.
func end(t *testing.T, c *Conn) conformance.End {
	return conformance.End{
		Conn: c,
		Bind: c.Bind,
		SendData: func(ctx context.Context) error {
			return c.Write(ctx, websocket.TextMessage, []byte("data"))
		},
		Abort:               func() { _ = c.WebSocket().UnderlyingConn().Close() },
		PingsCarrySeq:       true,
		PingsCarryAdvice:    true,
		SendsPongs:          true,
		ReportsCleanClose:   true,
		CoalescesHeartbeats: true,
	}
}

func TestConformance(t *testing.T) {
	conformance.RunFormats(t, "gorilla", func(t *testing.T, f wire.Format, subs []string) (a, b conformance.End) {
		sws, cws := wsPair(t, subs, nil)
		s, err := Wrap(sws, Options{ConnID: "c-1"})
		if err != nil {
			t.Fatal(err)
		}
		c, err := Wrap(cws, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if s.Format() != f || c.Format() != f {
			t.Fatalf("negotiated %v/%v, want %v", s.Format(), c.Format(), f)
		}
		return end(t, s), end(t, c)
	})
}

var _ transport.Conn = (*Conn)(nil)
