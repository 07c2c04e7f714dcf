package nbiohandler_test

import (
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heartbeat-go/heartbeat/presence"
)

// TestClientCloseLeavesAtOnce: a client that closes with 1000 (a logout)
// leaves at once (docs/presence.md: ConnClosed, "leaves at once"), as it
// does through presence.Handler, instead of waiting the resume window as a
// lost connection does.
func TestClientCloseLeavesAtOnce(t *testing.T) {
	r := newRig(t, time.Second, 5*time.Second, 10*time.Second, nil)
	ws := r.dial(t, "ann", true)
	r.waitEvent(t, presence.UserJoined, "ann")
	if err := ws.WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseNormalClosure, "logout"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(wait)
	for {
		select {
		case e := <-r.evs:
			if e.Kind == presence.UserLeft && e.User == "ann" {
				if e.Reason != presence.LeaveClosed {
					t.Fatalf("ann left with reason %v after closing with 1000, want %v (at once, not after the resume window)",
						e.Reason, presence.LeaveClosed)
				}
				return
			}
		case <-deadline:
			t.Fatalf("ann did not leave within %v of closing with 1000", wait)
		}
	}
}
