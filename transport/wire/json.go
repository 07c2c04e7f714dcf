package wire

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// The JSON form is one object whose first member is "hb" (the version), so
// a receiver tells a heartbeat from an application message by its first six
// bytes:
//
//	{"hb":1,"t":"ping","seq":7,"ts":1700000000000,"id":"c-42","rw":3000}
//
// Members: hb (version), t (ping, pong, drain, close), seq, ts (Unix ms),
// and when set id, rw (reconnect window, ms), ta (timeout advice, ms; a
// later addition that readers before it ignore), reason, to (drain target)
// and meta (an object of strings). Unknown members are ignored, so a later
// minor addition does not break an older reader.
var jsonPrefix = []byte(`{"hb":`)

// AppendJSON appends m's JSON form to buf.
func AppendJSON(buf []byte, m *Message) ([]byte, error) {
	if err := m.validate("encode"); err != nil {
		return buf, err
	}
	start := len(buf)
	buf = append(buf, jsonPrefix...)
	buf = strconv.AppendInt(buf, Version, 10)
	buf = append(buf, `,"t":"`...)
	buf = append(buf, m.Type.String()...)
	buf = append(buf, `","seq":`...)
	buf = strconv.AppendUint(buf, m.Seq, 10)
	buf = append(buf, `,"ts":`...)
	buf = strconv.AppendInt(buf, m.SentAt, 10)
	if m.ConnID != "" {
		buf = append(buf, `,"id":`...)
		buf = appendJSONString(buf, m.ConnID)
	}
	if m.Window > 0 {
		buf = append(buf, `,"rw":`...)
		buf = strconv.AppendInt(buf, int64(m.Window/time.Millisecond), 10)
	}
	if m.TimeoutAdvice >= time.Millisecond {
		buf = append(buf, `,"ta":`...)
		buf = strconv.AppendInt(buf, int64(m.TimeoutAdvice/time.Millisecond), 10)
	}
	if m.Reason != "" {
		buf = append(buf, `,"reason":`...)
		buf = appendJSONString(buf, m.Reason)
	}
	if m.Target != "" {
		buf = append(buf, `,"to":`...)
		buf = appendJSONString(buf, m.Target)
	}
	if len(m.Meta) > 0 {
		keys := make([]string, 0, len(m.Meta))
		for k := range m.Meta {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		buf = append(buf, `,"meta":{`...)
		for i, k := range keys {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendJSONString(buf, k)
			buf = append(buf, ':')
			buf = appendJSONString(buf, m.Meta[k])
		}
		buf = append(buf, '}')
	}
	buf = append(buf, '}')
	if n := len(buf) - start; n > MaxMessageSize {
		return buf[:start], tooLarge("encode", "", fmt.Sprintf("%d bytes exceed %d", n, MaxMessageSize))
	}
	return buf, nil
}

// appendJSONString appends s as a JSON string. s is valid UTF-8 (Validate
// checked it); only the characters JSON requires are escaped.
func appendJSONString(buf []byte, s string) []byte {
	const hex = "0123456789abcdef"
	buf = append(buf, '"')
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			buf = append(buf, '\\', c)
			i++
		case c < 0x20:
			buf = append(buf, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			i++
		case c < utf8.RuneSelf:
			buf = append(buf, c)
			i++
		default:
			_, n := utf8.DecodeRuneInString(s[i:])
			buf = append(buf, s[i:i+n]...)
			i += n
		}
	}
	return append(buf, '"')
}

type jsonMessage struct {
	HB     *int              `json:"hb"`
	T      string            `json:"t"`
	Seq    uint64            `json:"seq"`
	TS     int64             `json:"ts"`
	ID     string            `json:"id"`
	RW     int64             `json:"rw"`
	TA     float64           `json:"ta"`
	Reason string            `json:"reason"`
	To     string            `json:"to"`
	Meta   map[string]string `json:"meta"`
}

// DecodeJSON decodes one message in the JSON form. Input over
// MaxMessageSize is rejected before it is parsed.
func DecodeJSON(b []byte) (Message, error) {
	fail := func(field string, sentinel error, format string, args ...any) (Message, error) {
		return Message{}, &Error{Op: "decode json", Field: field, Offset: -1, Err: sentinel, Detail: fmt.Sprintf(format, args...)}
	}
	if len(b) > MaxMessageSize {
		return fail("", ErrTooLarge, "%d bytes exceed %d", len(b), MaxMessageSize)
	}
	if !bytes.HasPrefix(b, jsonPrefix) {
		return fail("", ErrMalformed, `no JSON heartbeat prefix (want {"hb":)`)
	}
	// JSON text is UTF-8 (RFC 8259 §8.1). encoding/json would replace each
	// invalid byte with U+FFFD, three bytes, so a decoded message could
	// carry more than was sent and differ from what the binary form, which
	// rejects invalid UTF-8, makes of the same strings.
	if !utf8.Valid(b) {
		return fail("", ErrMalformed, "not valid UTF-8")
	}
	var j jsonMessage
	if err := json.Unmarshal(b, &j); err != nil {
		return Message{}, &Error{Op: "decode json", Offset: -1, Err: ErrMalformed, Detail: err.Error(), Cause: err}
	}
	if j.HB == nil || *j.HB != Version {
		v := "null"
		if j.HB != nil {
			v = strconv.Itoa(*j.HB)
		}
		return fail("hb", ErrVersion, "version %s, want %d", v, Version)
	}
	t, ok := typeOf(j.T)
	if !ok {
		return fail("t", ErrUnknownType, "type %q is not one of ping, pong, drain, close", truncate(j.T, 16))
	}
	if j.RW < 0 || j.RW > int64(MaxWindow/time.Millisecond) {
		return fail("rw", ErrMalformed, "reconnect window %d ms must be between 0 and %d", j.RW, int64(MaxWindow/time.Millisecond))
	}
	m := Message{
		Type:   t,
		Seq:    j.Seq,
		SentAt: j.TS,
		ConnID: j.ID,
		Window: time.Duration(j.RW) * time.Millisecond,
		// Clamped, not rejected: the advice is optional, and a bad one
		// must not cost the heartbeat it rides on.
		TimeoutAdvice: clampTimeout(time.Duration(min(max(j.TA, 0), float64(MaxTimeoutAdvice/time.Millisecond))) * time.Millisecond).Truncate(timeoutUnit),
		Reason:        j.Reason,
		Target:        j.To,
		Meta:          j.Meta,
	}
	if len(m.Meta) == 0 {
		m.Meta = nil
	}
	if err := m.validate("decode json"); err != nil {
		return Message{}, err
	}
	return m, nil
}

// truncate keeps error messages from repeating more than n bytes of what
// the peer sent.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
