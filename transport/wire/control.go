package wire

import (
	"encoding/binary"
	"fmt"
	"time"
)

// The control payload is what an adapter puts in a WebSocket ping frame:
//
//	seq      8 bytes, big-endian
//	window   4 bytes, big-endian milliseconds (optional: a server's
//	         reconnect-window advice)
//	timeout  2 bytes, big-endian centiseconds (optional: a server's
//	         fleet timeout advice, transport.Frame.TimeoutAdvice)
//
// 8, 10 (seq, timeout), 12 (seq, window) or 14 bytes: the size says which
// fields are present, far under the 125 RFC 6455 §5.5 allows. A pong
// echoes its ping's payload unchanged, so the pinger reads its own Seq
// back; the advice in an echoed payload is the pinger's own and must be
// ignored. The timeout field is version 2 of the payload: a reader of
// version 1 takes a 10- or 14-byte payload for a foreign one (Seq 0, no
// advice) and still answers the ping, so a server sends it rarely (see
// policy.DefaultFleetAdvicePeriod).
const (
	// ControlSeqSize is the size of a control payload without advice.
	ControlSeqSize = 8
	// ControlAdviceSize is the size of a control payload with the
	// reconnect-window advice.
	ControlAdviceSize = 12
	// ControlTimeoutBytes is what the timeout advice adds to a payload.
	ControlTimeoutBytes = 2
	// ControlMaxSize is the size of a control payload with both advices.
	ControlMaxSize = ControlAdviceSize + ControlTimeoutBytes
)

// MaxTimeoutAdvice bounds the timeout advice in every form: an encoder
// clamps larger advice to it, a decoder clamps what it reads (equal to
// policy.MaxAdvice; detectors clamp further to their own bounds).
const MaxTimeoutAdvice = 10 * time.Minute

// timeoutUnit is the resolution of the timeout advice in the control and
// binary forms: 2 bytes reach 655 s.
const timeoutUnit = 10 * time.Millisecond

func clampTimeout(d time.Duration) time.Duration { return min(max(d, 0), MaxTimeoutAdvice) }

// AppendControl appends the control payload for seq and window to buf. A
// window of zero or less is left out; one over MaxWindow is clamped.
func AppendControl(buf []byte, seq uint64, window time.Duration) []byte {
	buf = binary.BigEndian.AppendUint64(buf, seq)
	if window > 0 {
		window = min(window, MaxWindow)
		buf = binary.BigEndian.AppendUint32(buf, uint32(window/time.Millisecond))
	}
	return buf
}

// AppendControlAdvice appends the control payload for seq, window and the
// fleet's timeout advice to buf. Advice of zero or less is left out;
// larger than MaxWindow or MaxTimeoutAdvice it is clamped, and the
// timeout is truncated to centiseconds.
func AppendControlAdvice(buf []byte, seq uint64, window, timeout time.Duration) []byte {
	buf = AppendControl(buf, seq, window)
	if timeout = clampTimeout(timeout); timeout >= timeoutUnit {
		buf = binary.BigEndian.AppendUint16(buf, uint16(timeout/timeoutUnit))
	}
	return buf
}

// ParseControl reads a control payload. A payload of another size (a peer
// that pings with its own payload) gives an *Error wrapping ErrMalformed;
// the caller then reports the frame with Seq 0 (unknown).
func ParseControl(p []byte) (seq uint64, window time.Duration, err error) {
	seq, window, _, err = ParseControlAdvice(p)
	return seq, window, err
}

// ParseControlAdvice reads a control payload with its timeout advice (0 if
// absent), clamped to MaxTimeoutAdvice. Errors are ParseControl's.
func ParseControlAdvice(p []byte) (seq uint64, window, timeout time.Duration, err error) {
	switch len(p) {
	case ControlSeqSize + ControlTimeoutBytes, ControlMaxSize:
		cs := binary.BigEndian.Uint16(p[len(p)-ControlTimeoutBytes:])
		timeout = clampTimeout(time.Duration(cs) * timeoutUnit)
		p = p[:len(p)-ControlTimeoutBytes]
	}
	switch len(p) {
	case ControlSeqSize:
		return binary.BigEndian.Uint64(p), 0, timeout, nil
	case ControlAdviceSize:
		ms := binary.BigEndian.Uint32(p[8:])
		window = time.Duration(ms) * time.Millisecond
		if window > MaxWindow {
			return 0, 0, 0, &Error{Op: "parse control", Field: "window", Offset: 8, Err: ErrTooLarge,
				Detail: fmt.Sprintf("%v exceeds %v", window, MaxWindow)}
		}
		return binary.BigEndian.Uint64(p), window, timeout, nil
	}
	if len(p) < len(foreignControl) {
		return 0, 0, 0, foreignControl[len(p)]
	}
	return 0, 0, 0, &Error{Op: "parse control", Offset: -1, Err: ErrMalformed,
		Detail: fmt.Sprintf("%d bytes, want 8, 10, 12 or 14", len(p))}
}

// foreignControl holds ParseControl's error for each payload size a
// control frame can have: peers that ping with their own payload (gorilla
// and most libraries send an empty one) do so on every ping, and the error
// should cost no allocation each time. The errors are shared: do not
// modify them.
var foreignControl = func() (errs [126]*Error) {
	for n := range errs {
		errs[n] = &Error{Op: "parse control", Offset: -1, Err: ErrMalformed,
			Detail: fmt.Sprintf("%d bytes, want 8, 10, 12 or 14", n)}
	}
	return errs
}()
