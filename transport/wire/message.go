package wire

import (
	"fmt"
	"time"
	"unicode/utf8"
)

// Version is the version of the application-level message this package
// writes and reads. A message of another version is rejected with
// ErrVersion; a new version gets new subprotocol names, so two sides that
// negotiated a subprotocol never disagree about it.
//
// Version 2 of the binary form adds one optional field, the timeout advice
// (Message.TimeoutAdvice); this package reads versions 1 and 2 and writes
// version 2 only for a message that carries it. The JSON form needs no new
// version: a reader of version 1 ignores the unknown member "ta".
const Version = 1

// Version2 is the binary form's version with the timeout advice.
const Version2 = 2

// Limits of the application-level message. Decoders reject anything larger
// before they copy a byte of it.
const (
	// MaxMessageSize bounds one encoded message, in either form.
	MaxMessageSize = 1024
	// MaxConnIDLen bounds Message.ConnID, in bytes.
	MaxConnIDLen = 64
	// MaxReasonLen bounds Message.Reason: 123 bytes, what a WebSocket close
	// frame can carry, so a reason can be passed on to one unchanged.
	MaxReasonLen = 123
	// MaxTargetLen bounds Message.Target, in bytes.
	MaxTargetLen = 256
	// MaxMetaEntries bounds the number of Message.Meta entries.
	MaxMetaEntries = 8
	// MaxMetaKeyLen and MaxMetaValueLen bound each Meta key and value, in
	// bytes; with the other limits they keep the largest message within
	// MaxMessageSize in the binary form.
	MaxMetaKeyLen   = 16
	MaxMetaValueLen = 32
	// MaxWindow bounds Message.Window.
	MaxWindow = time.Hour
	// MaxSafeInteger is the largest Seq and the largest |SentAt| a message
	// may carry: the largest integer a JavaScript number holds exactly, so
	// a browser peer reads the same value.
	MaxSafeInteger = 1<<53 - 1
)

// Type says what a Message asks or answers.
type Type uint8

const (
	// Ping asks the peer for a Pong echoing Seq and SentAt.
	Ping Type = iota + 1
	// Pong answers a Ping (or arrives unsolicited: still evidence of life).
	Pong
	// Drain is a server's request that the client reconnect, to Target if
	// set, spreading its first attempt over Window. The server keeps serving
	// until the client goes.
	Drain
	// Close is a server's notice that it is closing the connection, for
	// Reason; the client should not reconnect sooner than a draw from
	// Window.
	Close

	numTypes = iota + 1
)

var typeNames = [numTypes]string{"", "ping", "pong", "drain", "close"}

func (t Type) String() string {
	if int(t) < len(typeNames) && t != 0 {
		return typeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

func typeOf(name string) (Type, bool) {
	for i := 1; i < len(typeNames); i++ {
		if typeNames[i] == name {
			return Type(i), true
		}
	}
	return 0, false
}

// Message is one application-level heartbeat message.
type Message struct {
	Type Type
	// Seq numbers a Ping; its Pong echoes it. At most MaxSafeInteger.
	Seq uint64
	// SentAt is the sender's clock when it sent the Ping, in Unix
	// milliseconds; the Pong echoes it so the pinger can compute the round
	// trip without keeping state. Zero means not set.
	SentAt int64
	// ConnID is the connection's identity, assigned by the server and sent
	// in the server's messages. A server must ignore the ConnID of a
	// client's message: identity is never taken from the client.
	ConnID string
	// Window is the server's reconnect-window advice: if this connection is
	// lost, spread the first reconnect attempt uniformly over this long.
	// Millisecond resolution; zero means no advice.
	Window time.Duration
	// TimeoutAdvice is the server's fleet advice (transport.Frame's
	// TimeoutAdvice): a dead timeout live peers of this server rarely
	// exceed. Zero means none; at most MaxTimeoutAdvice (decoders clamp);
	// centisecond resolution (decoders truncate, JSON writes milliseconds).
	TimeoutAdvice time.Duration
	// Reason says why, for Drain and Close. At most MaxReasonLen bytes.
	Reason string
	// Target is where a Drain asks the client to reconnect; empty means
	// the same address.
	Target string
	// Meta is small user metadata (at most MaxMetaEntries entries).
	// Decoders return nil, never an empty map, when there is none, so a
	// message has one decoded form whichever encoding carried it.
	Meta map[string]string
}

// Validate reports the first field that cannot be encoded, as an *Error
// wrapping ErrMalformed, ErrTooLarge or ErrUnknownType.
func (m *Message) Validate() error {
	return m.validate("validate")
}

func (m *Message) validate(op string) error {
	if m.Type == 0 || m.Type >= numTypes {
		return &Error{Op: op, Field: "type", Offset: -1, Err: ErrUnknownType,
			Detail: fmt.Sprintf("type %d is not one of ping, pong, drain, close", m.Type)}
	}
	if m.Seq > MaxSafeInteger {
		return tooLarge(op, "seq", fmt.Sprintf("%d exceeds %d", m.Seq, uint64(MaxSafeInteger)))
	}
	if m.SentAt > MaxSafeInteger || m.SentAt < -MaxSafeInteger {
		return tooLarge(op, "ts", fmt.Sprintf("%d is outside ±%d", m.SentAt, int64(MaxSafeInteger)))
	}
	if m.Window < 0 || m.Window > MaxWindow {
		return &Error{Op: op, Field: "rw", Offset: -1, Err: ErrMalformed,
			Detail: fmt.Sprintf("reconnect window %v must be between 0 and %v", m.Window, MaxWindow)}
	}
	if m.TimeoutAdvice < 0 || m.TimeoutAdvice > MaxTimeoutAdvice {
		return &Error{Op: op, Field: "ta", Offset: -1, Err: ErrMalformed,
			Detail: fmt.Sprintf("timeout advice %v must be between 0 and %v", m.TimeoutAdvice, MaxTimeoutAdvice)}
	}
	if err := checkString(op, "id", m.ConnID, MaxConnIDLen); err != nil {
		return err
	}
	if err := checkString(op, "reason", m.Reason, MaxReasonLen); err != nil {
		return err
	}
	if err := checkString(op, "to", m.Target, MaxTargetLen); err != nil {
		return err
	}
	if len(m.Meta) > MaxMetaEntries {
		return tooLarge(op, "meta", fmt.Sprintf("%d entries exceed %d", len(m.Meta), MaxMetaEntries))
	}
	for k, v := range m.Meta {
		if k == "" {
			return &Error{Op: op, Field: "meta", Offset: -1, Err: ErrMalformed, Detail: "empty key"}
		}
		if err := checkString(op, "meta key", k, MaxMetaKeyLen); err != nil {
			return err
		}
		if err := checkString(op, "meta value", v, MaxMetaValueLen); err != nil {
			return err
		}
	}
	return nil
}

func checkString(op, field, s string, limit int) error {
	if len(s) > limit {
		return tooLarge(op, field, fmt.Sprintf("%d bytes exceed %d", len(s), limit))
	}
	if !utf8.ValidString(s) {
		return &Error{Op: op, Field: field, Offset: -1, Err: ErrMalformed, Detail: "not valid UTF-8"}
	}
	return nil
}

func tooLarge(op, field, detail string) error {
	return &Error{Op: op, Field: field, Offset: -1, Err: ErrTooLarge, Detail: detail}
}
