package wire

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"time"
)

// The binary form:
//
//	0xFF 'h'            magic (0xFF never starts valid UTF-8, so a binary
//	                    heartbeat is never mistaken for a text message)
//	version             1 byte
//	type                1 byte
//	flags               1 byte: which optional fields follow
//	seq                 uvarint
//	ts                  zig-zag varint (Unix milliseconds)
//	id                  uvarint length + bytes     (flagID)
//	rw                  uvarint milliseconds       (flagWindow)
//	reason              uvarint length + bytes     (flagReason)
//	to                  uvarint length + bytes     (flagTarget)
//	meta                uvarint count, then per entry key and value,
//	                    each uvarint length + bytes (flagMeta; keys sorted)
//	ta                  uvarint centiseconds       (flagTimeout; version 2
//	                    only, clamped to MaxTimeoutAdvice when read)
//
// Nothing may follow the last field: a new field is a new version.
// Version 2 is version 1 with flagTimeout; it is written only for a message
// that carries timeout advice.
const (
	magic0       = 0xFF
	magic1       = 'h'
	binaryHeader = 5
)

const (
	flagID = 1 << iota
	flagWindow
	flagReason
	flagTarget
	flagMeta
	flagTimeout
	flagsKnown  = flagID | flagWindow | flagReason | flagTarget | flagMeta
	flagsKnown2 = flagsKnown | flagTimeout
)

// AppendBinary appends m's binary form to buf.
func AppendBinary(buf []byte, m *Message) ([]byte, error) {
	if err := m.validate("encode"); err != nil {
		return buf, err
	}
	var flags byte
	if m.ConnID != "" {
		flags |= flagID
	}
	if m.Window > 0 {
		flags |= flagWindow
	}
	if m.Reason != "" {
		flags |= flagReason
	}
	if m.Target != "" {
		flags |= flagTarget
	}
	if len(m.Meta) > 0 {
		flags |= flagMeta
	}
	version := byte(Version)
	if m.TimeoutAdvice >= timeoutUnit {
		flags |= flagTimeout
		version = Version2
	}
	start := len(buf)
	buf = append(buf, magic0, magic1, version, byte(m.Type), flags)
	buf = binary.AppendUvarint(buf, m.Seq)
	buf = binary.AppendVarint(buf, m.SentAt)
	if flags&flagID != 0 {
		buf = appendBytes(buf, m.ConnID)
	}
	if flags&flagWindow != 0 {
		buf = binary.AppendUvarint(buf, uint64(m.Window/time.Millisecond))
	}
	if flags&flagReason != 0 {
		buf = appendBytes(buf, m.Reason)
	}
	if flags&flagTarget != 0 {
		buf = appendBytes(buf, m.Target)
	}
	if flags&flagMeta != 0 {
		keys := make([]string, 0, len(m.Meta))
		for k := range m.Meta {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		buf = binary.AppendUvarint(buf, uint64(len(keys)))
		for _, k := range keys {
			buf = appendBytes(buf, k)
			buf = appendBytes(buf, m.Meta[k])
		}
	}
	if flags&flagTimeout != 0 {
		buf = binary.AppendUvarint(buf, uint64(m.TimeoutAdvice/timeoutUnit))
	}
	if n := len(buf) - start; n > MaxMessageSize {
		return buf[:start], tooLarge("encode", "", fmt.Sprintf("%d bytes exceed %d", n, MaxMessageSize))
	}
	return buf, nil
}

func appendBytes(buf []byte, s string) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(s)))
	return append(buf, s...)
}

// DecodeBinary decodes one message in the binary form. Every length is
// checked against the bytes that remain and the field's limit before the
// field is copied, so the strings of the result never add up to more than
// len(b).
func DecodeBinary(b []byte) (Message, error) {
	d := binDecoder{b: b}
	return d.decode()
}

type binDecoder struct {
	b   []byte
	off int
}

func (d *binDecoder) fail(field string, sentinel error, format string, args ...any) error {
	return &Error{Op: "decode binary", Field: field, Offset: d.off, Err: sentinel, Detail: fmt.Sprintf(format, args...)}
}

func (d *binDecoder) decode() (Message, error) {
	var m Message
	if len(d.b) > MaxMessageSize {
		return m, d.fail("", ErrTooLarge, "%d bytes exceed %d", len(d.b), MaxMessageSize)
	}
	if len(d.b) < binaryHeader || d.b[0] != magic0 || d.b[1] != magic1 {
		return m, d.fail("", ErrMalformed, "no binary heartbeat header (want 0xFF 'h' version type flags)")
	}
	known := byte(flagsKnown)
	switch v := d.b[2]; v {
	case Version:
	case Version2:
		known = flagsKnown2
	default:
		d.off = 2
		return m, d.fail("version", ErrVersion, "version %d, want %d or %d", v, Version, Version2)
	}
	m.Type = Type(d.b[3])
	if m.Type == 0 || m.Type >= numTypes {
		d.off = 3
		return m, d.fail("type", ErrUnknownType, "type %d is not one of ping, pong, drain, close", d.b[3])
	}
	flags := d.b[4]
	if flags&^known != 0 {
		d.off = 4
		return m, d.fail("flags", ErrMalformed, "unknown flags %#x", flags&^known)
	}
	d.off = binaryHeader
	var err error
	if m.Seq, err = d.uvarint("seq", MaxSafeInteger); err != nil {
		return Message{}, err
	}
	if m.SentAt, err = d.varint("ts"); err != nil {
		return Message{}, err
	}
	if flags&flagID != 0 {
		if m.ConnID, err = d.str("id", MaxConnIDLen); err != nil {
			return Message{}, err
		}
	}
	if flags&flagWindow != 0 {
		ms, err := d.uvarint("rw", uint64(MaxWindow/time.Millisecond))
		if err != nil {
			return Message{}, err
		}
		m.Window = time.Duration(ms) * time.Millisecond
	}
	if flags&flagReason != 0 {
		if m.Reason, err = d.str("reason", MaxReasonLen); err != nil {
			return Message{}, err
		}
	}
	if flags&flagTarget != 0 {
		if m.Target, err = d.str("to", MaxTargetLen); err != nil {
			return Message{}, err
		}
	}
	if flags&flagMeta != 0 {
		// Each entry takes at least two bytes (two zero lengths), so the
		// count is checked against what remains before the map is made.
		n, err := d.uvarint("meta", MaxMetaEntries)
		if err != nil {
			return Message{}, err
		}
		if int(n)*2 > len(d.b)-d.off {
			return Message{}, d.fail("meta", ErrMalformed, "%d entries claimed, only %d bytes remain", n, len(d.b)-d.off)
		}
		// An empty section decodes to nil, as in JSON: one message, one
		// decoded form.
		if n > 0 {
			m.Meta = make(map[string]string, n)
		}
		for range n {
			k, err := d.str("meta key", MaxMetaKeyLen)
			if err != nil {
				return Message{}, err
			}
			v, err := d.str("meta value", MaxMetaValueLen)
			if err != nil {
				return Message{}, err
			}
			if k == "" {
				return Message{}, d.fail("meta key", ErrMalformed, "empty key")
			}
			if _, dup := m.Meta[k]; dup {
				return Message{}, d.fail("meta key", ErrMalformed, "duplicate key %q", k)
			}
			m.Meta[k] = v
		}
	}
	if flags&flagTimeout != 0 {
		// Clamped, not rejected: the advice is optional, and a bad one
		// must not cost the heartbeat it rides on.
		cs, err := d.uvarint("ta", math.MaxUint64)
		if err != nil {
			return Message{}, err
		}
		m.TimeoutAdvice = clampTimeout(time.Duration(min(cs, uint64(MaxTimeoutAdvice/timeoutUnit))) * timeoutUnit)
	}
	if d.off != len(d.b) {
		return Message{}, d.fail("", ErrMalformed, "%d bytes after the last field", len(d.b)-d.off)
	}
	if err := m.validate("decode binary"); err != nil {
		return Message{}, err
	}
	return m, nil
}

func (d *binDecoder) uvarint(field string, limit uint64) (uint64, error) {
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		return 0, d.fail(field, ErrMalformed, "truncated or overlong varint")
	}
	if v > limit {
		return 0, d.fail(field, ErrTooLarge, "%d exceeds %d", v, limit)
	}
	d.off += n
	return v, nil
}

func (d *binDecoder) varint(field string) (int64, error) {
	v, n := binary.Varint(d.b[d.off:])
	if n <= 0 {
		return 0, d.fail(field, ErrMalformed, "truncated or overlong varint")
	}
	if v > MaxSafeInteger || v < -MaxSafeInteger {
		return 0, d.fail(field, ErrTooLarge, "%d is outside ±%d", v, int64(MaxSafeInteger))
	}
	d.off += n
	return v, nil
}

// str reads a length-prefixed string. The claimed length is checked against
// the limit and the remaining input before anything is copied: the lesson of
// Heartbleed, which echoed a length the peer claimed.
func (d *binDecoder) str(field string, limit int) (string, error) {
	n, err := d.uvarint(field, uint64(limit))
	if err != nil {
		return "", err
	}
	if rem := len(d.b) - d.off; int(n) > rem {
		return "", d.fail(field, ErrMalformed, "length %d claimed, only %d bytes remain", n, rem)
	}
	s := string(d.b[d.off : d.off+int(n)])
	d.off += int(n)
	return s, nil
}
