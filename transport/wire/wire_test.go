package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/policy"
	"github.com/heartbeat-go/heartbeat/transport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func samples() []Message {
	return []Message{
		{Type: Ping, Seq: 1},
		{Type: Ping, Seq: 42, SentAt: 1_700_000_000_123, ConnID: "c-42", Window: 3 * time.Second},
		{Type: Pong, Seq: MaxSafeInteger, SentAt: -MaxSafeInteger},
		{Type: Drain, Reason: "deploy", Target: "wss://b.example/ws", Window: 30 * time.Second},
		{Type: Close, Reason: strings.Repeat("r", MaxReasonLen)},
		{Type: Ping, Meta: map[string]string{"room": "a", "quote\"": "back\\slash\n", "ü": "→"}},
		{Type: Ping, Seq: 9, Window: time.Second, TimeoutAdvice: 18*time.Second + 430*time.Millisecond},
	}
}

func TestRoundTrip(t *testing.T) {
	for _, f := range []Format{JSON, Binary} {
		for _, m := range samples() {
			b, err := Append(nil, f, &m)
			if err != nil {
				t.Fatalf("%v: encode %+v: %v", f, m, err)
			}
			if !IsHeartbeat(b) {
				t.Errorf("%v: IsHeartbeat(%q) = false", f, b)
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatalf("%v: decode %q: %v", f, b, err)
			}
			if !reflect.DeepEqual(got, m) {
				t.Errorf("%v: round trip\n got %+v\nwant %+v", f, got, m)
			}
		}
	}
}

func TestJSONFormIsReadable(t *testing.T) {
	m := Message{Type: Ping, Seq: 7, SentAt: 1700000000000, ConnID: "c-42", Window: 3 * time.Second}
	b, err := AppendJSON(nil, &m)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"hb":1,"t":"ping","seq":7,"ts":1700000000000,"id":"c-42","rw":3000}`
	if string(b) != want {
		t.Errorf("JSON form\n got %s\nwant %s", b, want)
	}
	// What a browser writes, in another member order after "hb", decodes too.
	got, err := DecodeJSON([]byte(`{"hb":1,"seq":9,"t":"pong","ts":5,"extra":[1,2]}`))
	if err != nil || got.Type != Pong || got.Seq != 9 || got.SentAt != 5 {
		t.Errorf("browser pong: %+v, %v", got, err)
	}
}

func TestBinaryIsCompact(t *testing.T) {
	m := Message{Type: Ping, Seq: 7, SentAt: 1700000000000}
	b, err := AppendBinary(nil, &m)
	if err != nil {
		t.Fatal(err)
	}
	j, _ := AppendJSON(nil, &m)
	if len(b) > 13 || len(b) >= len(j) {
		t.Errorf("binary ping is %d bytes (JSON %d): want at most 13", len(b), len(j))
	}
}

func TestDecodeErrors(t *testing.T) {
	okBin, _ := AppendBinary(nil, &Message{Type: Ping, Seq: 1, ConnID: "abc"})
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), okBin...)) }
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"json garbage", []byte(`{"hb":1,"t":`), ErrMalformed},
		{"json version", []byte(`{"hb":2,"t":"ping"}`), ErrVersion},
		{"json null version", []byte(`{"hb":null,"t":"ping"}`), ErrVersion},
		{"json type", []byte(`{"hb":1,"t":"hello"}`), ErrUnknownType},
		{"json negative seq", []byte(`{"hb":1,"t":"ping","seq":-1}`), ErrMalformed},
		{"json huge seq", []byte(`{"hb":1,"t":"ping","seq":9007199254740992}`), ErrTooLarge},
		{"json long id", []byte(`{"hb":1,"t":"ping","id":"` + strings.Repeat("x", 65) + `"}`), ErrTooLarge},
		{"json window", []byte(`{"hb":1,"t":"drain","rw":-5}`), ErrMalformed},
		{"json too large", append([]byte(`{"hb":1,"t":"ping","x":"`), bytes.Repeat([]byte("a"), MaxMessageSize)...), ErrTooLarge},
		{"json invalid utf-8", []byte("{\"hb\":1,\"t\":\"close\",\"reason\":\"\x85\x85\"}"), ErrMalformed},
		{"json many meta", []byte(`{"hb":1,"t":"ping","meta":{"a":"","b":"","c":"","d":"","e":"","f":"","g":"","h":"","i":""}}`), ErrTooLarge},
		{"bin short", []byte{0xFF, 'h', 1}, ErrMalformed},
		{"bin version", mut(func(b []byte) []byte { b[2] = 9; return b }), ErrVersion},
		{"bin type", mut(func(b []byte) []byte { b[3] = 0; return b }), ErrUnknownType},
		{"bin flags", mut(func(b []byte) []byte { b[4] |= 0x80; return b }), ErrMalformed},
		{"bin trailing", mut(func(b []byte) []byte { return append(b, 0) }), ErrMalformed},
		{"bin truncated", mut(func(b []byte) []byte { return b[:len(b)-1] }), ErrMalformed},
		{"bin claims more than sent", []byte{0xFF, 'h', 1, 1, flagID, 1, 0, 60, 'a'}, ErrMalformed},
		{"bin claims over limit", []byte{0xFF, 'h', 1, 1, flagID, 1, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F}, ErrTooLarge},
		{"bin meta count lies", []byte{0xFF, 'h', 1, 1, flagMeta, 1, 0, 8, 0, 0}, ErrMalformed},
		{"bin overlong varint", []byte{0xFF, 'h', 1, 1, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0}, ErrMalformed},
		{"bin too large", append([]byte{0xFF, 'h', 1, 1, 0}, make([]byte, MaxMessageSize)...), ErrTooLarge},
	}
	for _, c := range cases {
		_, err := Decode(c.in)
		var we *Error
		if !errors.As(err, &we) || !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want *Error wrapping %v", c.name, err, c.want)
		}
	}
}

// TestJSONSyntaxErrorIsWrapped: the JSON decoder's own error is the cause
// of the *Error, reachable with errors.As beside the sentinel.
func TestJSONSyntaxErrorIsWrapped(t *testing.T) {
	_, err := Decode([]byte(`{"hb":1,"t":`))
	var se *json.SyntaxError
	if !errors.As(err, &se) || !errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v, want ErrMalformed wrapping a *json.SyntaxError", err)
	}
	_, err = Decode([]byte(`{"hb":1,"t":"ping","seq":"x"}`))
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) {
		t.Fatalf("err = %v, want a *json.UnmarshalTypeError inside", err)
	}
}

// TestNoAllocationFromClaimedLength is the Heartbleed lesson: a message that
// claims a long field but carries a short one is rejected without the
// decoder allocating for the claim.
func TestNoAllocationFromClaimedLength(t *testing.T) {
	in := []byte{0xFF, 'h', 1, 1, flagID, 1, 0, 64} // claims a 64-byte id, carries none
	// The process's allocation counter also counts whatever else runs (the
	// runtime, the race detector): the least of five rounds is the
	// decoder's own.
	per := uint64(math.MaxUint64)
	for range 5 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		const n = 1000
		for range n {
			if _, err := DecodeBinary(in); !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
		}
		runtime.ReadMemStats(&after)
		per = min(per, (after.TotalAlloc-before.TotalAlloc)/n)
	}
	// Only the *Error and its detail string are allocated: far less than
	// the claimed 64 bytes would add.
	if per > 256 {
		t.Errorf("%d bytes allocated per rejected message", per)
	}
}

func TestDecodedNeverLargerThanInput(t *testing.T) {
	for _, m := range samples() {
		for _, f := range []Format{JSON, Binary} {
			b, _ := Append(nil, f, &m)
			got, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if n := payloadBytes(&got); n > len(b) {
				t.Errorf("%v: decoded %d bytes of strings from %d bytes", f, n, len(b))
			}
		}
	}
}

func payloadBytes(m *Message) int {
	n := len(m.ConnID) + len(m.Reason) + len(m.Target)
	for k, v := range m.Meta {
		n += len(k) + len(v)
	}
	return n
}

func TestEncodeValidates(t *testing.T) {
	bad := []struct {
		m    Message
		want error
	}{
		{Message{}, ErrUnknownType},
		{Message{Type: Ping, Seq: MaxSafeInteger + 1}, ErrTooLarge},
		{Message{Type: Close, Reason: strings.Repeat("r", MaxReasonLen+1)}, ErrTooLarge},
		{Message{Type: Drain, Window: -time.Second}, ErrMalformed},
		{Message{Type: Drain, Window: 2 * MaxWindow}, ErrMalformed},
		{Message{Type: Ping, ConnID: "\xff"}, ErrMalformed},
		{Message{Type: Ping, Meta: map[string]string{"": "v"}}, ErrMalformed},
		{Message{Type: Ping, Target: strings.Repeat("t", MaxTargetLen+1)}, ErrTooLarge},
	}
	for _, c := range bad {
		for _, f := range []Format{JSON, Binary} {
			out, err := Append([]byte("keep"), f, &c.m)
			if !errors.Is(err, c.want) || string(out) != "keep" {
				t.Errorf("%v %+v: (%q, %v), want buf untouched and %v", f, c.m, out, err, c.want)
			}
		}
	}
	// The largest message every limit allows still fits MaxMessageSize in
	// binary; in JSON, escaping can push it over and encoding says so.
	big := Message{Type: Drain, ConnID: strings.Repeat("i", MaxConnIDLen), Reason: strings.Repeat("\x01", MaxReasonLen),
		Target: strings.Repeat("t", MaxTargetLen), Meta: map[string]string{}}
	for i := range MaxMetaEntries {
		big.Meta[strings.Repeat(string(rune('a'+i)), MaxMetaKeyLen)] = strings.Repeat("v", MaxMetaValueLen)
	}
	if _, err := AppendBinary(nil, &big); err != nil {
		t.Errorf("binary of the largest message: %v", err)
	}
	if _, err := AppendJSON(nil, &big); !errors.Is(err, ErrTooLarge) {
		t.Errorf("JSON of an escaped-over-limit message: %v, want ErrTooLarge", err)
	}
}

func TestControl(t *testing.T) {
	p := AppendControl(nil, 7, 0)
	if seq, w, err := ParseControl(p); err != nil || seq != 7 || w != 0 || len(p) != ControlSeqSize {
		t.Errorf("seq only: %d %v %v (len %d)", seq, w, err, len(p))
	}
	p = AppendControl(nil, 1<<63, 1500*time.Millisecond)
	if seq, w, err := ParseControl(p); err != nil || seq != 1<<63 || w != 1500*time.Millisecond || len(p) != ControlAdviceSize {
		t.Errorf("with advice: %d %v %v", seq, w, err)
	}
	if _, w, _ := ParseControl(AppendControl(nil, 1, 10*MaxWindow)); w != MaxWindow {
		t.Errorf("window not clamped: %v", w)
	}
	for _, bad := range [][]byte{nil, []byte("1"), make([]byte, 9), make([]byte, 125)} {
		if _, _, err := ParseControl(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseControl(%d bytes) = %v, want ErrMalformed", len(bad), err)
		}
	}
	over := AppendControl(nil, 1, 0)
	over = append(over, 0xFF, 0xFF, 0xFF, 0xFF)
	if _, _, err := ParseControl(over); !errors.Is(err, ErrTooLarge) {
		t.Errorf("window over MaxWindow: %v", err)
	}
}

func TestFrameMapping(t *testing.T) {
	ping := Message{Type: Ping, Seq: 5, SentAt: 99, Window: time.Second}
	f := ping.Frame(make([]byte, 0, EchoSize))
	if f.Kind != transport.Ping || f.Seq != 5 || f.ReconnectWindow != time.Second || len(f.Payload) != EchoSize {
		t.Fatalf("ping frame %+v", f)
	}
	if pong := PongFor(f.Payload); pong.Type != Pong || pong.Seq != 5 || pong.SentAt != 99 {
		t.Errorf("PongFor = %+v", pong)
	}
	if pong := PongFor([]byte("x")); pong.Seq != 0 || pong.Type != Pong {
		t.Errorf("unsolicited PongFor = %+v", pong)
	}
	if f := (&Message{Type: Pong, Seq: 5, Window: time.Hour}).Frame(nil); f.Kind != transport.Pong || f.Seq != 5 || f.ReconnectWindow != 0 {
		t.Errorf("pong frame %+v: a pong's window is the pinger's own", f)
	}
	if f := (&Message{Type: Drain, Window: 2 * time.Second}).Frame(nil); f.Kind != transport.Data || f.ReconnectWindow != 2*time.Second {
		t.Errorf("drain frame %+v", f)
	}
}

func TestFormatOf(t *testing.T) {
	for _, f := range []Format{Control, JSON, Binary} {
		if got := FormatOf(f.Subprotocol()); got != f {
			t.Errorf("FormatOf(%q) = %v, want %v", f.Subprotocol(), got, f)
		}
	}
	if FormatOf("graphql-ws") != Control {
		t.Error("an unrelated subprotocol must mean control frames")
	}
	if IsHeartbeat([]byte(`{"type":"chat"}`)) || IsHeartbeat([]byte("hello")) {
		t.Error("application messages taken for heartbeats")
	}
}

// A foreign ping payload (gorilla's empty one, on every ping) costs no
// allocation to reject.
func TestParseControlForeignPayloadDoesNotAllocate(t *testing.T) {
	for _, p := range [][]byte{nil, make([]byte, 4), make([]byte, 125)} {
		if n := testing.AllocsPerRun(100, func() { _, _, _ = ParseControl(p) }); n != 0 {
			t.Errorf("%d-byte payload: %.0f allocations", len(p), n)
		}
		if _, _, err := ParseControl(p); !errors.Is(err, ErrMalformed) {
			t.Errorf("%d-byte payload: %v", len(p), err)
		}
	}
}

// The timeout advice: a few bytes in each form, clamped (never rejected)
// on decode, and invisible to a reader of the first version where that
// reader would ignore it.
func TestTimeoutAdvice(t *testing.T) {
	if MaxTimeoutAdvice != policy.MaxAdvice {
		t.Fatalf("wire bounds the advice at %v, detectors at %v", MaxTimeoutAdvice, policy.MaxAdvice)
	}
	plain := Message{Type: Ping, Seq: 9, SentAt: 1_700_000_000_000}
	advised := plain
	advised.TimeoutAdvice = 18 * time.Second
	for _, f := range []Format{JSON, Binary} {
		a, _ := Append(nil, f, &plain)
		b, err := Append(nil, f, &advised)
		if err != nil {
			t.Fatal(err)
		}
		extra := len(b) - len(a)
		if extra > 11 || (f == Binary && extra != 2) {
			t.Errorf("%v: the advice adds %d bytes", f, extra)
		}
		m, err := Decode(b)
		if err != nil || m.TimeoutAdvice != 18*time.Second {
			t.Errorf("%v: decoded %v, %v", f, m.TimeoutAdvice, err)
		}
		if fr := m.Frame(nil); fr.TimeoutAdvice != 18*time.Second {
			t.Errorf("%v: the frame carries %v", f, fr.TimeoutAdvice)
		}
	}
	// Binary: version 1 unless the advice is there; a version-1 header
	// with the new flag stays malformed, as before.
	a, _ := AppendBinary(nil, &plain)
	b, _ := AppendBinary(nil, &advised)
	if a[2] != Version || b[2] != Version2 {
		t.Errorf("versions %d and %d, want %d and %d", a[2], b[2], Version, Version2)
	}
	b[2] = Version
	if _, err := DecodeBinary(b); !errors.Is(err, ErrMalformed) {
		t.Errorf("version 1 with the timeout flag: %v, want ErrMalformed", err)
	}
	// Clamped on decode, in every form.
	huge := []byte(`{"hb":1,"t":"ping","seq":1,"ts":0,"ta":99999999999}`)
	if m, err := DecodeJSON(huge); err != nil || m.TimeoutAdvice != MaxTimeoutAdvice {
		t.Errorf("JSON ta huge: %v, %v", m.TimeoutAdvice, err)
	}
	neg := []byte(`{"hb":1,"t":"ping","seq":1,"ts":0,"ta":-5}`)
	if m, err := DecodeJSON(neg); err != nil || m.TimeoutAdvice != 0 {
		t.Errorf("JSON ta negative: %v, %v", m.TimeoutAdvice, err)
	}
	bin := []byte{magic0, magic1, Version2, byte(Ping), flagTimeout, 1, 0, 0xFF, 0xFF, 0x03}
	if m, err := DecodeBinary(bin); err != nil || m.TimeoutAdvice != MaxTimeoutAdvice {
		t.Errorf("binary ta 65535 cs: %v, %v", m.TimeoutAdvice, err)
	}
	if _, _, ta, err := ParseControlAdvice([]byte{0, 0, 0, 0, 0, 0, 0, 1, 0xFF, 0xFF}); err != nil || ta != MaxTimeoutAdvice {
		t.Errorf("control ta 655 s: %v, %v", ta, err)
	}
	// Control payload: 2 bytes, with or without the window.
	for _, w := range []time.Duration{0, 3 * time.Second} {
		p := AppendControlAdvice(nil, 7, w, 18*time.Second)
		if len(p) != len(AppendControl(nil, 7, w))+ControlTimeoutBytes {
			t.Errorf("window %v: %d bytes", w, len(p))
		}
		seq, gw, ta, err := ParseControlAdvice(p)
		if err != nil || seq != 7 || gw != w || ta != 18*time.Second {
			t.Errorf("window %v: read %d %v %v %v", w, seq, gw, ta, err)
		}
	}
	if p := AppendControlAdvice(nil, 7, 0, time.Millisecond); len(p) != ControlSeqSize {
		t.Errorf("advice under a centisecond is left out, not sent as 0: %d bytes", len(p))
	}
	if p := AppendControlAdvice(nil, 7, 0, time.Hour); len(p) != 10 {
		t.Errorf("an hour: %d bytes", len(p))
	} else if _, _, ta, _ := ParseControlAdvice(p); ta != MaxTimeoutAdvice {
		t.Errorf("an hour was not clamped: %v", ta)
	}
}

func TestPeerCloseErrorUnwraps(t *testing.T) {
	for code, want := range map[uint16]error{1000: fsm.ErrPeerLeft, 1001: fsm.ErrPeerLeft, 4001: fsm.ErrPeerLeft, 1006: net.ErrClosed, 1011: net.ErrClosed} {
		err := fmt.Errorf("adapter: %w", &PeerCloseError{Code: code})
		var pe *PeerCloseError
		if !errors.Is(err, want) || !errors.As(err, &pe) || pe.Code != code {
			t.Errorf("%d: %v is not %v with its code", code, err, want)
		}
	}
}
