package wire

import (
	"errors"
	"reflect"
	"testing"
	"time"
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
	f.Add(AppendControlAdvice(nil, 7, 0, 18*time.Second))
	f.Add(AppendControlAdvice(nil, 7, 3*time.Second, time.Hour))
	f.Fuzz(func(t *testing.T, in []byte) {
		seq, w, ta, err := ParseControlAdvice(in)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			return
		}
		if w < 0 || w > MaxWindow {
			t.Fatalf("window %v out of range", w)
		}
		if ta < 0 || ta > MaxTimeoutAdvice {
			t.Fatalf("timeout advice %v out of range", ta)
		}
		if s2, w2, err := ParseControl(in); err != nil || s2 != seq || w2 != w {
			t.Fatalf("ParseControl disagrees: %d %v %v, want %d %v", s2, w2, err, seq, w)
		}
		out := AppendControlAdvice(nil, seq, w, ta)
		s3, w3, ta3, err := ParseControlAdvice(out)
		if err != nil || s3 != seq || w3 != w || ta3 != ta {
			t.Fatalf("re-encoded %x as %x, which reads %d %v %v %v", in, out, s3, w3, ta3, err)
		}
		if len(out) > len(in) {
			t.Fatalf("re-encoded %d bytes as %d", len(in), len(out))
		}
	})
}
