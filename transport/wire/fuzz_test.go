package wire

import (
	"errors"
	"reflect"
	"testing"
)

// checkDecoded holds for anything a decoder accepts: it is valid, it
// carries no more bytes than were received, and it survives re-encoding in
// both forms.
func checkDecoded(t *testing.T, in []byte, m Message, err error) {
	if err != nil {
		var we *Error
		if !errors.As(err, &we) {
			t.Fatalf("error %v is not a *wire.Error", err)
		}
		if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrVersion) && !errors.Is(err, ErrUnknownType) {
			t.Fatalf("error %v wraps no sentinel", err)
		}
		return
	}
	if err := m.Validate(); err != nil {
		t.Fatalf("decoded an invalid message from %q: %v", in, err)
	}
	if n := payloadBytes(&m); n > len(in) {
		t.Fatalf("decoded %d bytes of strings from %d bytes of input", n, len(in))
	}
	for _, f := range []Format{JSON, Binary} {
		b, err := Append(nil, f, &m)
		if err != nil {
			if f == JSON && errors.Is(err, ErrTooLarge) {
				continue // escaping may push a valid message over the limit
			}
			t.Fatalf("re-encode %v: %v", f, err)
		}
		again, err := Decode(b)
		if err != nil {
			t.Fatalf("decode of re-encoded %q: %v", b, err)
		}
		if !reflect.DeepEqual(again, m) {
			t.Fatalf("round trip through %v changed %+v into %+v", f, m, again)
		}
	}
}

func FuzzDecodeBinary(f *testing.F) {
	for _, m := range samples() {
		b, _ := AppendBinary(nil, &m)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := DecodeBinary(in)
		checkDecoded(t, in, m, err)
	})
}

func FuzzDecodeJSON(f *testing.F) {
	for _, m := range samples() {
		b, _ := AppendJSON(nil, &m)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := DecodeJSON(in)
		checkDecoded(t, in, m, err)
	})
}

func FuzzParseControl(f *testing.F) {
	f.Add(AppendControl(nil, 1, 0))
	f.Add(AppendControl(nil, 1<<40, 3000_000_000))
	f.Fuzz(func(t *testing.T, in []byte) {
		seq, w, err := ParseControl(in)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			return
		}
		if w < 0 || w > MaxWindow {
			t.Fatalf("window %v out of range", w)
		}
		if out := AppendControl(nil, seq, w); !reflect.DeepEqual(out, in) && len(in) != ControlAdviceSize {
			t.Fatalf("re-encoded %x as %x", in, out)
		}
	})
}
