package wire

import (
	"bytes"
	"encoding/binary"
	"slices"
	"strings"

	"github.com/heartbeat-go/heartbeat/transport"
)

// Format says how heartbeats travel on a connection.
type Format uint8

const (
	// Control: WebSocket ping and pong control frames, with the control
	// payload. The default; needs no agreement beyond RFC 6455.
	Control Format = iota
	// JSON: application-level Messages in the JSON form, as text messages.
	JSON
	// Binary: application-level Messages in the binary form, as binary
	// messages.
	Binary
)

func (f Format) String() string {
	switch f {
	case Control:
		return "control"
	case JSON:
		return "json"
	case Binary:
		return "binary"
	}
	return "format(?)"
}

// The WebSocket subprotocols through which the two sides agree on the
// application-level format: the client offers them in its handshake
// (Sec-WebSocket-Protocol), the server picks one, and both read the choice
// from the connection (Subprotocol()). A connection that negotiated neither
// uses control frames.
const (
	SubprotocolJSON   = "heartbeat.v1.json"
	SubprotocolBinary = "heartbeat.v1.bin"
)

// Subprotocols lists the subprotocols in order of preference, for a client
// to offer and a server to accept.
func Subprotocols() []string { return []string{SubprotocolBinary, SubprotocolJSON} }

// ClientOrder returns the server's subprotocols, supported, reordered
// into the client's order of preference, offered (the handshake's
// Sec-WebSocket-Protocol list), leaving out those the client did not
// offer. gorilla's Upgrader and coder's Accept both take the first of the
// server's list that the client offered, so the server's order wins; given
// this list instead, they take the client's first choice. The result is
// never nil, so a server library does not fall back to another source.
func ClientOrder(offered, supported []string) []string {
	out := make([]string, 0, len(supported))
	for _, o := range offered {
		for _, s := range supported {
			if strings.EqualFold(o, s) && !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}

// FormatOf returns the format a negotiated subprotocol selects: Control for
// any other (or none).
func FormatOf(subprotocol string) Format {
	switch subprotocol {
	case SubprotocolJSON:
		return JSON
	case SubprotocolBinary:
		return Binary
	}
	return Control
}

// Subprotocol returns the subprotocol that selects f, or "" for Control.
func (f Format) Subprotocol() string {
	switch f {
	case JSON:
		return SubprotocolJSON
	case Binary:
		return SubprotocolBinary
	}
	return ""
}

// IsHeartbeat reports whether a data message is an application-level
// heartbeat (in either form) rather than an application message. On a
// connection that negotiated a heartbeat subprotocol, application messages
// must not begin with {"hb": or with the byte 0xFF.
func IsHeartbeat(b []byte) bool {
	return (len(b) >= 2 && b[0] == magic0 && b[1] == magic1) || bytes.HasPrefix(b, jsonPrefix)
}

// Decode decodes a message in whichever form it is.
func Decode(b []byte) (Message, error) {
	if len(b) > 0 && b[0] == magic0 {
		return DecodeBinary(b)
	}
	return DecodeJSON(b)
}

// Append appends m in form f (JSON or Binary) to buf.
func Append(buf []byte, f Format, m *Message) ([]byte, error) {
	if f == JSON {
		return AppendJSON(buf, m)
	}
	return AppendBinary(buf, m)
}

// EchoSize is the size of the echo handle a Ping's Frame carries: what the
// Pong answering it must repeat (Seq and SentAt).
const EchoSize = 16

// Frame returns the transport.Frame that reports m to the heartbeat. For a
// Ping the frame's Payload is the echo handle, appended to echo (pass a
// buffer of EchoSize capacity to avoid allocating); PongFor turns it back
// into the Pong. Drain and Close are reported as Data frames (evidence)
// carrying the Window advice. A Pong's Window is not reported: it echoes
// the pinger's own.
func (m *Message) Frame(echo []byte) transport.Frame {
	switch m.Type {
	case Ping:
		echo = binary.BigEndian.AppendUint64(echo, m.Seq)
		echo = binary.BigEndian.AppendUint64(echo, uint64(m.SentAt))
		return transport.Frame{Kind: transport.Ping, Seq: m.Seq, Payload: echo, ReconnectWindow: m.Window, TimeoutAdvice: m.TimeoutAdvice}
	case Pong:
		return transport.Frame{Kind: transport.Pong, Seq: m.Seq}
	}
	return transport.Frame{Kind: transport.Data, ReconnectWindow: m.Window}
}

// PongFor returns the Pong that answers a Ping whose Frame carried payload
// (its echo handle). A payload that is not an echo handle (an unsolicited
// pong) gives a Pong with Seq 0.
func PongFor(payload []byte) Message {
	m := Message{Type: Pong}
	if len(payload) == EchoSize {
		m.Seq = binary.BigEndian.Uint64(payload)
		m.SentAt = int64(binary.BigEndian.Uint64(payload[8:]))
		if m.Seq > MaxSafeInteger || m.SentAt > MaxSafeInteger || m.SentAt < -MaxSafeInteger {
			return Message{Type: Pong}
		}
	}
	return m
}
