package wire

import (
	"errors"
	"fmt"
)

// Sentinels wrapped by every *Error; test with errors.Is.
var (
	// ErrMalformed: the bytes are not a well-formed message.
	ErrMalformed = errors.New("wire: malformed heartbeat message")
	// ErrTooLarge: the message, or one of its fields, is over its limit.
	ErrTooLarge = errors.New("wire: heartbeat message too large")
	// ErrVersion: the message is of a version this package does not speak.
	ErrVersion = errors.New("wire: unsupported heartbeat message version")
	// ErrUnknownType: the message type is not one this version defines.
	ErrUnknownType = errors.New("wire: unknown heartbeat message type")
)

// Error says what is wrong with a message and where. It wraps one of the
// sentinels above.
type Error struct {
	Op     string // "decode json", "decode binary", "parse control", "encode", "validate"
	Field  string // the offending field, or "" for the message as a whole
	Offset int    // byte offset in the input, or -1
	Err    error  // ErrMalformed, ErrTooLarge, ErrVersion or ErrUnknownType
	Detail string // what was found and what was expected
	Cause  error  // the underlying error (encoding/json's, for JSON), or nil
}

func (e *Error) Error() string {
	s := "wire: " + e.Op
	if e.Field != "" {
		s += ": field " + e.Field
	}
	if e.Offset >= 0 {
		s += fmt.Sprintf(" at byte %d", e.Offset)
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s + " (" + e.Err.Error() + ")"
}

// Unwrap returns the sentinel and the cause, if any, for errors.Is and
// errors.As.
func (e *Error) Unwrap() []error {
	if e.Cause == nil {
		return []error{e.Err}
	}
	return []error{e.Err, e.Cause}
}
