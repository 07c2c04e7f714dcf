package wsconn

import (
	"context"
	"errors"
	"io"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/heartbeat-go/heartbeat/transport"
	"github.com/heartbeat-go/heartbeat/transport/conformance"
	"github.com/heartbeat-go/heartbeat/transport/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	errBound    = errors.New("test: bound")
	errKind     = errors.New("test: frame kind")
	errReserved = errors.New("test: reserved prefix")
)

// lib stands in for a WebSocket library: the read loop reads what the
// test sends on in, and a closed in fails the read.
type lib struct {
	in    chan []byte
	wrote chan []byte
}

func newCore(t *testing.T, cfg Config[int]) (*Core[int], *lib) {
	t.Helper()
	l := &lib{in: make(chan []byte), wrote: make(chan []byte, 8)}
	cfg.Name = "test"
	cfg.Text, cfg.Binary = 1, 2
	cfg.Read = func() (int, []byte, error) {
		p, ok := <-l.in
		if !ok {
			return 0, nil, io.EOF
		}
		return 2, p, nil
	}
	cfg.Write = func(_ context.Context, _ int, p []byte) error {
		l.wrote <- append([]byte(nil), p...)
		return nil
	}
	cfg.ErrBound, cfg.ErrFrameKind, cfg.ErrReservedPrefix = errBound, errKind, errReserved
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c, l
}

func encode(t *testing.T, m wire.Message) []byte {
	t.Helper()
	b, err := wire.Append(nil, wire.Binary, &m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestNewChecksOptions(t *testing.T) {
	for _, cfg := range []Config[int]{
		{Format: wire.Binary + 1},
		{Queue: -1},
		{ConnID: string(make([]byte, wire.MaxConnIDLen+1))},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
	c, err := New(Config[int]{Subprotocol: wire.SubprotocolJSON})
	if err != nil || c.Format() != wire.JSON || cap(c.msgs) != DefaultQueue {
		t.Errorf("defaults: format %v, queue %d, %v", c.Format(), cap(c.msgs), err)
	}
}

func TestBindOnceAndNotAfterClose(t *testing.T) {
	c, l := newCore(t, Config[int]{})
	if err := c.Bind(conformance.NewRecorder(), nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Bind(conformance.NewRecorder(), nil); !errors.Is(err, errBound) {
		t.Errorf("second Bind: %v, want the adapter's ErrBound", err)
	}
	c.Close(nil, func(bool) { close(l.in) })
	d, _ := newCore(t, Config[int]{})
	d.Close(nil, func(started bool) {
		if started {
			t.Error("shut told the read loop runs before Bind")
		}
	})
	if err := d.Bind(conformance.NewRecorder(), func() { t.Error("install ran after Close") }); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("Bind after Close: %v, want ErrClosed", err)
	}
}

// TestDispatch: application messages are evidence and go to Read;
// heartbeats are reported and never reach Read; a malformed one is
// evidence and goes to OnMalformed; drain goes to OnMessage; a client
// learns the server's ID.
func TestDispatch(t *testing.T) {
	var malformed []error
	var messages []wire.Message
	c, l := newCore(t, Config[int]{Format: wire.Binary,
		OnMalformed: func(err error) { malformed = append(malformed, err) },
		OnMessage:   func(m wire.Message) { messages = append(messages, m) }})
	r := conformance.NewRecorder()
	if err := c.Bind(r, nil); err != nil {
		t.Fatal(err)
	}
	l.in <- []byte("app")
	l.in <- encode(t, wire.Message{Type: wire.Ping, Seq: 7, ConnID: "s-1", Window: time.Second})
	l.in <- []byte{0xFF, 'h', 1, 1, 1, 1, 0, 60, 'a'}
	l.in <- encode(t, wire.Message{Type: wire.Drain, Reason: "moving"})
	close(l.in)
	if err := r.WaitClosed(t); !errors.Is(err, io.EOF) {
		t.Errorf("Closed(%v), want the read's error", err)
	}
	if f := r.WaitFrame(t, transport.Ping); f.Seq != 7 || f.ReconnectWindow != time.Second {
		t.Errorf("ping reported as %+v", f)
	}
	if n := r.Count(transport.Data); n != 3 {
		t.Errorf("%d data frames, want 3 (the message, the malformed heartbeat and the drain)", n)
	}
	if len(malformed) != 1 || !errors.Is(malformed[0], wire.ErrMalformed) {
		t.Errorf("OnMalformed got %v", malformed)
	}
	if len(messages) != 1 || messages[0].Type != wire.Drain {
		t.Errorf("OnMessage got %v", messages)
	}
	if got := c.PeerID(); got != "s-1" {
		t.Errorf("PeerID %q, want s-1", got)
	}
	ctx := context.Background()
	if _, p, err := c.Read(ctx); err != nil || string(p) != "app" {
		t.Errorf("Read: %q, %v; want the application message", p, err)
	}
	if _, _, err := c.Read(ctx); !errors.Is(err, io.EOF) {
		t.Errorf("Read after the end: %v, want the read's error", err)
	}
	c.Close(nil, func(bool) {})
}

func TestServerIgnoresClientID(t *testing.T) {
	c, l := newCore(t, Config[int]{Format: wire.Binary, ConnID: "s-1"})
	r := conformance.NewRecorder()
	if err := c.Bind(r, nil); err != nil {
		t.Fatal(err)
	}
	l.in <- encode(t, wire.Message{Type: wire.Ping, Seq: 1, ConnID: "forged"})
	r.WaitFrame(t, transport.Ping)
	if got := c.PeerID(); got != "" {
		t.Errorf("server took the client's ID %q", got)
	}
	c.Close(nil, func(bool) { close(l.in) })
}

// TestEndReasons: a local Close is reported as ErrClosed even after a
// broken write; a broken write is reported before the read's own error.
func TestEndReasons(t *testing.T) {
	broken := errors.New("write broke")
	t.Run("fail", func(t *testing.T) {
		c, l := newCore(t, Config[int]{})
		r := conformance.NewRecorder()
		_ = c.Bind(r, nil)
		if !c.Fail(broken) || c.Fail(errors.New("second")) {
			t.Error("Fail records only the first broken write")
		}
		close(l.in)
		if err := r.WaitClosed(t); !errors.Is(err, broken) {
			t.Errorf("Closed(%v), want the broken write", err)
		}
		c.Close(nil, func(bool) {})
	})
	t.Run("close", func(t *testing.T) {
		c, l := newCore(t, Config[int]{})
		r := conformance.NewRecorder()
		_ = c.Bind(r, nil)
		_ = c.Fail(broken)
		c.Close(errors.New("bye"), func(bool) { close(l.in) })
		if c.Fail(broken) {
			t.Error("Fail recorded after Close")
		}
		if err := r.WaitClosed(t); !errors.Is(err, transport.ErrClosed) {
			t.Errorf("Closed(%v), want ErrClosed", err)
		}
	})
}

// TestClosingWithAFullQueue: the read loop, stuck on a full queue when
// Close begins, stops at once without KeepReading and goes on reading with
// it; either way the queued message is still read, then ErrClosed.
func TestClosingWithAFullQueue(t *testing.T) {
	for _, keep := range []bool{false, true} {
		c, l := newCore(t, Config[int]{Queue: 1, KeepReading: keep})
		r := conformance.NewRecorder()
		_ = c.Bind(r, nil)
		l.in <- []byte("queued")
		l.in <- []byte("stuck")
		r.WaitCount(t, transport.Data, 2)
		c.Close(nil, func(bool) {
			if !keep {
				return
			}
			select {
			case l.in <- []byte("dropped"):
			case <-time.After(conformance.Wait):
				t.Error("the read loop stopped reading while closing")
			}
			close(l.in)
		})
		if !keep {
			select {
			case l.in <- []byte("late"):
				t.Error("the read loop read on while closing")
			default:
			}
		}
		if err := r.WaitClosed(t); !errors.Is(err, transport.ErrClosed) {
			t.Errorf("keep %v: Closed(%v), want ErrClosed", keep, err)
		}
		if _, p, err := c.Read(context.Background()); err != nil || string(p) != "queued" {
			t.Errorf("keep %v: Read %q, %v; want the queued message", keep, p, err)
		}
		if _, _, err := c.Read(context.Background()); !errors.Is(err, transport.ErrClosed) {
			t.Errorf("keep %v: Read after the end: %v, want ErrClosed", keep, err)
		}
	}
}

func TestSends(t *testing.T) {
	c, l := newCore(t, Config[int]{Format: wire.JSON, ConnID: "s-1"})
	ctx := context.Background()
	if err := c.Write(ctx, 1, []byte(`{"hb":1}`)); !errors.Is(err, errReserved) {
		t.Errorf("Write of a heartbeat-like message: %v, want ErrReservedPrefix", err)
	}
	if err := c.CheckSend(ctx, transport.Frame{Kind: transport.Data}); !errors.Is(err, errKind) {
		t.Errorf("CheckSend(data): %v", err)
	}
	if err := c.CheckSend(ctx, transport.Frame{Kind: transport.Pong, Payload: make([]byte, 126)}); !errors.Is(err, transport.ErrPayloadTooLarge) {
		t.Errorf("CheckSend(126 bytes): %v", err)
	}
	if err := c.SendFrame(ctx, transport.Frame{Kind: transport.Ping, Seq: 3}); err != nil {
		t.Fatal(err)
	}
	m, err := wire.Decode(<-l.wrote)
	if err != nil || m.Type != wire.Ping || m.Seq != 3 || m.ConnID != "s-1" {
		t.Errorf("sent %+v, %v", m, err)
	}
	c.Close(nil, func(bool) {})
	if err := c.CheckSend(ctx, transport.Frame{Kind: transport.Ping}); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("CheckSend after Close: %v", err)
	}
	if err := c.SendError(transport.Ping, errors.New("broken pipe")); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("SendError after Close: %v, want ErrClosed", err)
	}
}

func TestControlPayloads(t *testing.T) {
	c, _ := newCore(t, Config[int]{})
	r := conformance.NewRecorder()
	c.ev = r // as Bind would, without a read loop
	PingIn(c, string(wire.AppendControl(nil, 9, 2*time.Second)))
	PingIn(c, wire.AppendControlAdvice(nil, 10, 0, 18*time.Second))
	PingIn(c, []byte("theirs"))
	if f := r.WaitFrame(t, transport.Ping); f.Seq != 9 || f.ReconnectWindow != 2*time.Second {
		t.Errorf("our ping reported as %+v", f)
	}
	if f := r.WaitFrame(t, transport.Ping); f.Seq != 10 || f.TimeoutAdvice != 18*time.Second {
		t.Errorf("our ping with timeout advice reported as %+v", f)
	}
	if f := r.WaitFrame(t, transport.Ping); f.Seq != 0 || string(f.Payload) != "theirs" {
		t.Errorf("a peer's own ping reported as %+v", f)
	}
	if seq := PongSeq(wire.AppendControl(nil, 5, time.Second)); seq != 5 {
		t.Errorf("PongSeq %d, want 5", seq)
	}
	if seq := PongSeq("theirs"); seq != 0 {
		t.Errorf("PongSeq of a peer's payload %d, want 0", seq)
	}
}

// TestReadErrorWrapsTheReason: after a local Close for a reason (the
// driver's conviction, say), Read's error is both transport.ErrClosed and
// the reason, with or without a running read loop.
func TestReadErrorWrapsTheReason(t *testing.T) {
	silent := errors.New("test: peer silent")
	t.Run("bound", func(t *testing.T) {
		c, l := newCore(t, Config[int]{})
		r := conformance.NewRecorder()
		_ = c.Bind(r, nil)
		c.Close(silent, func(bool) { close(l.in) })
		_, _, err := c.Read(context.Background())
		if !errors.Is(err, transport.ErrClosed) || !errors.Is(err, silent) {
			t.Errorf("Read: %v, want ErrClosed wrapping the reason", err)
		}
		if err := r.WaitClosed(t); !errors.Is(err, silent) {
			t.Errorf("Closed(%v), want the reason wrapped", err)
		}
	})
	t.Run("never bound", func(t *testing.T) {
		c, _ := newCore(t, Config[int]{})
		c.Close(silent, func(bool) {})
		_, _, err := c.Read(context.Background())
		if !errors.Is(err, transport.ErrClosed) || !errors.Is(err, silent) {
			t.Errorf("Read: %v, want ErrClosed wrapping the reason", err)
		}
	})
	if err := ClosedError(nil); err != transport.ErrClosed {
		t.Errorf("ClosedError(nil) = %v", err)
	}
}

// TestSendErrorWrapsTheCause: a failed heartbeat write names the adapter
// and the frame and keeps the library's error for errors.Is.
func TestSendErrorWrapsTheCause(t *testing.T) {
	c, _ := newCore(t, Config[int]{})
	broken := errors.New("broken pipe")
	if err := c.SendError(transport.Pong, broken); !errors.Is(err, broken) {
		t.Errorf("SendError: %v, want the cause wrapped", err)
	}
	c.Close(nil, func(bool) {})
}

// Past QueueBytes the read loop reads nothing more until Read takes a
// message: two messages of 64 KiB fill a queue of 100 KiB (the loop admits
// while under it), a third waits in the library (the socket), and each Read
// lets exactly one more in.
func TestQueueBytesPausesTheReadLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, l := newCore(t, Config[int]{QueueBytes: 100 << 10})
		if err := c.Bind(conformance.NewRecorder(), nil); err != nil {
			t.Fatal(err)
		}
		msg := make([]byte, 64<<10)
		offer := func() bool { // does the loop read now?
			synctest.Wait()
			select {
			case l.in <- msg:
				return true
			default:
				return false
			}
		}
		for i := range 2 {
			if !offer() {
				t.Fatalf("message %d not read with %d bytes queued", i, c.queued.Load())
			}
		}
		for i := range 3 {
			if offer() {
				t.Fatalf("round %d: the loop read on with %d bytes queued, limit %d", i, c.queued.Load(), 100<<10)
			}
			if _, _, err := c.Read(t.Context()); err != nil {
				t.Fatal(err)
			}
			if !offer() {
				t.Fatalf("round %d: the loop did not read on after Read took a message", i)
			}
		}
		c.Close(nil, func(bool) { close(l.in) })
	})
}
