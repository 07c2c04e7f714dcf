package wire

import (
	"context"
	"errors"
	"net"
	"strconv"
	"unicode/utf8"

	"github.com/heartbeat-go/heartbeat/fsm"
)

// WebSocket close codes (RFC 6455 §7.4.1) the adapters send.
const (
	CloseNormal          = 1000 // the user closed the connection
	CloseGoingAway       = 1001 // shutting down, or the peer was lost
	ClosePolicyViolation = 1008 // the peer broke the heartbeat's rules (ping flood)
	// ClosePageAway is what the browser client (heartbeat.js) sends where
	// a Go client sends CloseGoingAway, which a page may not send (only
	// 1000 and 3000–4999): it leaves this connection, not its session —
	// it redials, or goes into the back/forward cache. Adapters and the
	// presence hub read it as 1001; 1000 from a page means it is done.
	ClosePageAway = 4001
)

// CloseStatus returns the close code and the reason text (at most 123
// bytes, cut at a UTF-8 boundary) a WebSocket close frame should carry when
// the heartbeat closes for reason: a ping flood is a policy violation whose
// text names the rule, so the flooding peer learns why it was cut off
// (gRPC's opaque "too_many_pings" is a known complaint).
func CloseStatus(reason error) (code uint16, text string) {
	switch {
	case reason == nil || errors.Is(reason, fsm.ErrClosed):
		code = CloseNormal
	case errors.Is(reason, fsm.ErrPingFlood), errors.Is(reason, fsm.ErrDataFlood):
		code = ClosePolicyViolation
	default: // shutdown (context cancelled), a lost peer, anything else
		code = CloseGoingAway
	}
	if reason != nil {
		text = reason.Error()
	}
	if len(text) > MaxReasonLen {
		cut := MaxReasonLen
		for cut > 0 && !utf8.RuneStart(text[cut]) {
			cut--
		}
		text = text[:cut]
	}
	return code, text
}

// Handshake reports whether closing for reason should wait for the peer's
// close frame (RFC 6455 §7.1.1): yes when the peer is thought alive (the
// user closed, a shutdown, a ping flood), no when it was lost, since it
// would not answer. Closing the socket before the peer's close frame
// arrives can reset the connection and lose the close frame, and with it
// the reason.
// A reason of another package may ask for the handshake by having a
// method CloseHandshake() bool that returns true (presence.ErrShutdown:
// a server going away from live peers).
func Handshake(reason error) bool {
	var h interface{ CloseHandshake() bool }
	if errors.As(reason, &h) && h.CloseHandshake() {
		return true
	}
	return reason == nil || errors.Is(reason, fsm.ErrClosed) || errors.Is(reason, fsm.ErrPingFlood) || errors.Is(reason, fsm.ErrDataFlood) ||
		errors.Is(reason, context.Canceled)
}

// PeerCloseError ends a connection the peer closed with a close frame, for
// adapters whose WebSocket library has no error type of its own for it:
// code 1000, 1001 or 4001 unwraps to fsm.ErrPeerLeft (the peer left on
// purpose), any other to net.ErrClosed. The presence hub reads Code to tell
// a logout (1000) from a redial.
type PeerCloseError struct {
	Code uint16
}

func (e *PeerCloseError) Error() string {
	return "peer closed with " + strconv.Itoa(int(e.Code)) + ": " + e.Unwrap().Error()
}

// Unwrap returns fsm.ErrPeerLeft for a clean close, else net.ErrClosed.
func (e *PeerCloseError) Unwrap() error {
	switch e.Code {
	case CloseNormal, CloseGoingAway, ClosePageAway:
		return fsm.ErrPeerLeft
	}
	return net.ErrClosed
}
