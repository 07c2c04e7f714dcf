package wire

import (
	"errors"
	"fmt"
	"testing"

	"github.com/heartbeat-go/heartbeat/fsm"
)

type handshakeReason struct{ want bool }

func (handshakeReason) Error() string          { return "going away" }
func (r handshakeReason) CloseHandshake() bool { return r.want }

// Handshake waits for a live peer's close frame: on a user close, a flood,
// and a reason of another package that asks for it (wrapped too); not on a
// lost connection.
func TestHandshake(t *testing.T) {
	for _, c := range []struct {
		reason error
		want   bool
	}{
		{nil, true},
		{fsm.ErrClosed, true},
		{fsm.ErrPingFlood, true},
		{handshakeReason{true}, true},
		{fmt.Errorf("shutdown: %w", handshakeReason{true}), true},
		{handshakeReason{false}, false},
		{errors.New("peer silent"), false},
	} {
		if got := Handshake(c.reason); got != c.want {
			t.Errorf("Handshake(%v) = %v, want %v", c.reason, got, c.want)
		}
	}
}
