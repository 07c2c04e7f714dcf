package mem

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/heartbeat-go/heartbeat/transport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// sink records what an end receives, with the (fake) time of arrival.
type sink struct {
	mu     sync.Mutex
	frames []transport.Frame
	at     []time.Time
	closed []error
}

func (s *sink) Frame(f transport.Frame) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.frames = append(s.frames, f)
	s.at = append(s.at, time.Now())
}

// snapshot returns copies of what arrived so far.
func (s *sink) snapshot() (frames []transport.Frame, at []time.Time, closed []error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append(frames, s.frames...), append(at, s.at...), append(closed, s.closed...)
}

func (s *sink) count() (frames, closed int) {
	f, _, c := s.snapshot()
	return len(f), len(c)
}

func (s *sink) Closed(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = append(s.closed, err)
}

func TestPipeDeliversInOrderAfterDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := Pipe(nil)
		sa, sb := &sink{}, &sink{}
		a.Bind(sa)
		b.Bind(sb)
		defer a.Close(nil)
		defer b.Close(nil)
		a.SetDelay(30 * time.Millisecond)
		start := time.Now()
		for i := range 5 {
			if err := a.Send(context.Background(), transport.Frame{Kind: transport.Ping, Seq: uint64(i + 1), Payload: []byte{byte(i)}}); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait()
		if n, _ := sb.count(); n != 0 {
			t.Fatal("delivered before the delay")
		}
		<-time.After(30 * time.Millisecond)
		synctest.Wait()
		frames, at, _ := sb.snapshot()
		if len(frames) != 5 {
			t.Fatalf("%d frames delivered", len(frames))
		}
		for i, f := range frames {
			if f.Seq != uint64(i+1) || f.Payload[0] != byte(i) || at[i].Sub(start) != 30*time.Millisecond {
				t.Fatalf("frame %d: %+v at %v", i, f, at[i].Sub(start))
			}
		}
		if a.Sent(transport.Ping) != 5 || a.Sent(transport.Pong) != 0 {
			t.Fatalf("sent counts %d %d", a.Sent(transport.Ping), a.Sent(transport.Pong))
		}
	})
}

func TestPayloadIsCopied(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := Pipe(nil)
		sb := &sink{}
		a.Bind(&sink{})
		b.Bind(sb)
		defer a.Close(nil)
		defer b.Close(nil)
		buf := []byte("abc")
		_ = a.Send(context.Background(), transport.Frame{Kind: transport.Pong, Payload: buf})
		buf[0] = 'X'
		synctest.Wait()
		if frames, _, _ := sb.snapshot(); string(frames[0].Payload) != "abc" {
			t.Fatalf("payload %q aliases the sender's buffer", frames[0].Payload)
		}
	})
}

func TestDropMakesHalfOpenLink(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := Pipe(nil)
		sa, sb := &sink{}, &sink{}
		a.Bind(sa)
		b.Bind(sb)
		a.SetDrop(true)
		_ = a.SendData()
		_ = b.SendData()
		synctest.Wait()
		nb, _ := sb.count()
		na, _ := sa.count()
		if nb != 0 || na != 1 {
			t.Fatalf("a→b %d frames, b→a %d", nb, na)
		}
		_ = a.Close(errors.New("bye"))
		synctest.Wait()
		if _, c := sb.count(); c != 0 {
			t.Fatal("a dropping end still announced its close")
		}
		_ = b.Close(nil)
	})
}

func TestCutSilencesBothWays(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := Pipe(nil)
		sa, sb := &sink{}, &sink{}
		a.Bind(sa)
		b.Bind(sb)
		a.Cut()
		_ = a.SendData()
		_ = b.SendData()
		_ = a.Close(nil)
		synctest.Wait()
		na, _ := sa.count()
		nb, cb := sb.count()
		if na+nb+cb != 0 {
			t.Fatal("traffic crossed a cut")
		}
		_ = b.Close(nil)
	})
}

func TestCloseNotifiesPeerAndRefusesSends(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := Pipe(nil)
		sb := &sink{}
		a.Bind(&sink{})
		b.Bind(sb)
		reason := errors.New("going away")
		_ = a.Close(reason)
		_ = a.Close(reason) // idempotent
		synctest.Wait()
		if _, _, closed := sb.snapshot(); len(closed) != 1 || !errors.Is(closed[0], reason) {
			t.Fatalf("peer saw %v", closed)
		}
		if err := a.SendData(); !errors.Is(err, transport.ErrClosed) {
			t.Fatalf("send after close: %v", err)
		}
		_ = b.Close(nil)
	})
}

func TestOversizedControlPayloadIsRefused(t *testing.T) {
	a, b := Pipe(nil)
	err := a.Send(context.Background(), transport.Frame{Kind: transport.Ping, Payload: make([]byte, 126)})
	if !errors.Is(err, transport.ErrPayloadTooLarge) {
		t.Fatalf("126-byte ping: %v", err)
	}
	_ = a.Close(nil)
	_ = b.Close(nil)
}

func TestListenerDownAndCrash(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var servers []*Conn
		var mu sync.Mutex
		l := Listen(nil, func(c *Conn) {
			mu.Lock()
			servers = append(servers, c)
			mu.Unlock()
			c.Bind(&sink{})
		})
		cs := &sink{}
		c, err := l.Dial(context.Background(), cs)
		if err != nil {
			t.Fatal(err)
		}
		l.Crash(errors.New("restart"))
		synctest.Wait()
		if _, c := cs.count(); c != 1 {
			t.Fatal("crash did not close the client's connection")
		}
		if _, err := l.Dial(context.Background(), &sink{}); !errors.Is(err, ErrRefused) {
			t.Fatalf("dial while down: %v", err)
		}
		l.SetDown(false)
		c2, err := l.Dial(context.Background(), &sink{})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := l.Dial(ctx, &sink{}); !errors.Is(err, context.Canceled) {
			t.Fatalf("dial with a done context: %v", err)
		}
		_ = c.Close(nil)
		_ = c2.Close(nil)
		for _, s := range servers {
			_ = s.Close(nil)
		}
	})
}
