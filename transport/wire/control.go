package wire

import (
	"encoding/binary"
	"fmt"
	"time"
)

// The control payload is what an adapter puts in a WebSocket ping frame:
//
//	seq     8 bytes, big-endian
//	window  4 bytes, big-endian milliseconds (optional: a server's
//	        reconnect-window advice)
//
// 8 or 12 bytes, far under the 125 RFC 6455 §5.5 allows. A pong echoes its
// ping's payload unchanged, so the pinger reads its own Seq back; the
// window in an echoed payload is the pinger's own and must be ignored.
const (
	// ControlSeqSize is the size of a control payload without advice.
	ControlSeqSize = 8
	// ControlAdviceSize is the size of a control payload with advice.
	ControlAdviceSize = 12
)

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

// ParseControl reads a control payload. A payload of another size (a peer
// that pings with its own payload) gives an *Error wrapping ErrMalformed;
// the caller then reports the frame with Seq 0 (unknown).
func ParseControl(p []byte) (seq uint64, window time.Duration, err error) {
	switch len(p) {
	case ControlSeqSize:
		return binary.BigEndian.Uint64(p), 0, nil
	case ControlAdviceSize:
		ms := binary.BigEndian.Uint32(p[8:])
		window = time.Duration(ms) * time.Millisecond
		if window > MaxWindow {
			return 0, 0, &Error{Op: "parse control", Field: "window", Offset: 8, Err: ErrTooLarge,
				Detail: fmt.Sprintf("%v exceeds %v", window, MaxWindow)}
		}
		return binary.BigEndian.Uint64(p), window, nil
	}
	if len(p) < len(foreignControl) {
		return 0, 0, foreignControl[len(p)]
	}
	return 0, 0, &Error{Op: "parse control", Offset: -1, Err: ErrMalformed,
		Detail: fmt.Sprintf("%d bytes, want %d or %d", len(p), ControlSeqSize, ControlAdviceSize)}
}

// foreignControl holds ParseControl's error for each payload size a
// control frame can have: peers that ping with their own payload (gorilla
// and most libraries send an empty one) do so on every ping, and the error
// should cost no allocation each time. The errors are shared: do not
// modify them.
var foreignControl = func() (errs [126]*Error) {
	for n := range errs {
		errs[n] = &Error{Op: "parse control", Offset: -1, Err: ErrMalformed,
			Detail: fmt.Sprintf("%d bytes, want %d or %d", n, ControlSeqSize, ControlAdviceSize)}
	}
	return errs
}()
