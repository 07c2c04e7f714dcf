package transport

import (
	"context"
	"errors"
	"sync/atomic"
	"time"
)

// MaxControlPayload is the largest ping or pong payload RFC 6455 §5.5 allows
// in a control frame.
const MaxControlPayload = 125

// ErrPayloadTooLarge reports a heartbeat payload over MaxControlPayload.
var ErrPayloadTooLarge = errors.New("transport: heartbeat payload larger than 125 bytes")

// ErrClosed reports use of a connection after it was closed.
var ErrClosed = errors.New("transport: connection closed")

// ErrPeerClosed wraps a send that failed because the peer had closed the
// connection (its close frame arrived first): the driver reports the loss
// as peer closed, not as a broken write.
var ErrPeerClosed = errors.New("transport: the peer closed the connection")

// FrameKind says what an inbound or outbound frame is.
type FrameKind uint8

const (
	// Data is an application message. Inbound data is evidence of life; the
	// heartbeat never sends data itself.
	Data FrameKind = iota + 1
	// Ping asks the peer for a Pong.
	Ping
	// Pong answers a Ping (or arrives unsolicited, which is still evidence).
	Pong
)

func (k FrameKind) String() string {
	switch k {
	case Data:
		return "data"
	case Ping:
		return "ping"
	case Pong:
		return "pong"
	}
	return "frame(?)"
}

// Frame is one heartbeat-relevant frame, inbound or outbound.
//
// Outbound, the heartbeat sends only Ping (with Seq) and Pong (with Payload,
// the inbound ping's payload echoed). Inbound, an adapter reports every frame
// it sees: its Kind, the Seq it could decode (0 if none) and, for a Ping, the
// Payload the Pong must echo.
type Frame struct {
	Kind FrameKind
	// Seq is the heartbeat sequence number of a Ping, echoed by its Pong.
	// Zero means unknown (a peer that pings with its own payload).
	Seq uint64
	// Payload is, for an inbound Ping, the bytes the Pong must echo, and for an
	// outbound Pong, those bytes. At most MaxControlPayload bytes. A receiver
	// may use it only until the call that handed it over returns.
	Payload []byte
	// ReconnectWindow is the server's advice carried in a heartbeat: if the
	// connection to it is lost, spread the first reconnect attempt uniformly
	// over this long. Zero means no advice.
	ReconnectWindow time.Duration
	// TimeoutAdvice is the server's fleet advice carried in a heartbeat: a
	// dead timeout (silence after the last evidence) that live connections
	// of this server rarely exceed (policy.Fleet). The Machine hands it to
	// a detector that takes advice (policy.Advisable), which clamps it.
	// Zero means no advice.
	TimeoutAdvice time.Duration
	// Size is, for an inbound Data frame, the message's length in bytes,
	// which Machine meters against fsm.Config.DataByteRate. Zero means
	// unknown.
	Size int
}

// Conn is an established connection as the heartbeat sees it. Adapters wrap a
// WebSocket (or anything else) in it.
type Conn interface {
	// Send writes one heartbeat frame (Ping or Pong). It must be safe to call
	// while the application writes its own messages and must return by the
	// context's deadline.
	Send(ctx context.Context, f Frame) error
	// Close closes the connection; reason says why (it may be sent to the
	// peer as a close reason). Close is idempotent.
	Close(reason error) error
}

// Events receives what happens on a connection. The heartbeat driver
// implements it; an adapter calls it from its reader goroutine.
type Events interface {
	// Frame reports one inbound frame. The frame's Payload may be reused by
	// the caller after Frame returns.
	Frame(f Frame)
	// Closed reports that the connection ended: the peer closed it or a read
	// failed. err says why (nil for a clean close).
	Closed(err error)
}

// Dialer opens connections. For the client role it dials a new connection on
// every call; for the server role it hands over the connection that was
// already accepted (see Accepted). The returned Conn must report to ev.
type Dialer interface {
	Dial(ctx context.Context, ev Events) (Conn, error)
}

// DialerFunc adapts a function to Dialer.
type DialerFunc func(ctx context.Context, ev Events) (Conn, error)

// Dial calls f.
func (f DialerFunc) Dial(ctx context.Context, ev Events) (Conn, error) { return f(ctx, ev) }

// ErrAlreadyBound reports a second Dial on a Dialer made by Accepted: a
// server-side connection cannot be dialled again.
var ErrAlreadyBound = errors.New("transport: accepted connection already bound; the server role does not redial")

// Accepted returns a Dialer for the server role: its first Dial binds an
// already accepted connection to ev through bind; later calls fail with
// ErrAlreadyBound.
func Accepted(bind func(ev Events) (Conn, error)) Dialer {
	var used atomic.Bool
	return DialerFunc(func(ctx context.Context, ev Events) (Conn, error) {
		if !used.CompareAndSwap(false, true) {
			return nil, ErrAlreadyBound
		}
		return bind(ev)
	})
}
