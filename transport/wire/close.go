package wire

import (
	"context"
	"errors"
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
	case errors.Is(reason, fsm.ErrPingFlood):
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
func Handshake(reason error) bool {
	return reason == nil || errors.Is(reason, fsm.ErrClosed) || errors.Is(reason, fsm.ErrPingFlood) ||
		errors.Is(reason, context.Canceled)
}
