package gorillaws

import (
	"bytes"
	"context"
	"errors"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/policy"
	"github.com/heartbeat-go/heartbeat/transport"
	"github.com/heartbeat-go/heartbeat/transport/conformance"
	"github.com/heartbeat-go/heartbeat/transport/wire"
)

// TestReadAfterConvictionWrapsTheCause: a peer that never answers is
// convicted; the application's Read then fails with an error that is both
// transport.ErrClosed and fsm.ErrPeerSilent, as are the driver's Err and
// the Offline change.
func TestReadAfterConvictionWrapsTheCause(t *testing.T) {
	sws, _ := wsPair(t, nil, nil) // the client never reads: it never answers a ping
	s, err := Wrap(sws, Options{})
	if err != nil {
		t.Fatal(err)
	}
	offline := make(chan fsm.Change, 1)
	d, err := s.Watch(context.Background(), fsm.DriverConfig{Config: testConfig(fsm.Server)},
		fsm.Presence{Offline: func(c fsm.Change) { offline <- c }})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	_, _, err = s.Read(ctx)
	if !errors.Is(err, transport.ErrClosed) || !errors.Is(err, fsm.ErrPeerSilent) {
		t.Errorf("Read after the conviction: %v, want ErrClosed and ErrPeerSilent", err)
	}
	select {
	case c := <-offline:
		if !errors.Is(c.Err, fsm.ErrPeerSilent) {
			t.Errorf("offline with %v, want ErrPeerSilent", c.Err)
		}
	case <-time.After(bound):
		t.Fatal("never offline")
	}
	<-d.Done()
	if !errors.Is(d.Err(), fsm.ErrPeerSilent) {
		t.Errorf("driver Err %v, want ErrPeerSilent", d.Err())
	}
}

// TestWatchCancelledContextClosesConn: a handler that starts goroutines and
// returns cancels r.Context() at once. The driver then closes before the
// connection was ever bound; the connection must be closed all the same:
// Done closes and Read returns, wrapping the context's error.
func TestWatchCancelledContextClosesConn(t *testing.T) {
	sws, _ := wsPair(t, nil, nil)
	s, err := Wrap(sws, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // what returning from the handler does to r.Context()
	d, err := s.Watch(ctx, fsm.DriverConfig{Config: testConfig(fsm.Server)}, fsm.Presence{})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Done():
	case <-time.After(bound):
		t.Fatal("the connection was not closed when the Watch context was cancelled")
	}
	<-d.Done()
	rctx, rcancel := context.WithTimeout(context.Background(), bound)
	defer rcancel()
	if _, _, err := s.Read(rctx); !errors.Is(err, transport.ErrClosed) || !errors.Is(err, context.Canceled) {
		t.Errorf("Read: %v, want ErrClosed wrapping context.Canceled", err)
	}
}

// TestPeerCleanCloseIsNotADeath: a client that closes with 1000 has left;
// the server's Offline reports closed (peer left), with gorilla's close
// error and fsm.ErrPeerLeft both reachable, not alive → dead (peer closed).
func TestPeerCleanCloseIsNotADeath(t *testing.T) {
	sws, cws := wsPair(t, nil, nil)
	s, err := Wrap(sws, Options{})
	if err != nil {
		t.Fatal(err)
	}
	online, offline := make(chan struct{}), make(chan fsm.Change, 1)
	d, err := s.Watch(context.Background(), fsm.DriverConfig{Config: testConfig(fsm.Server)},
		fsm.Presence{Online: func() { close(online) }, Offline: func(c fsm.Change) { offline <- c }})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	<-online
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye")
	if err := cws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(bound)); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-offline:
		var ce *websocket.CloseError
		if c.To != fsm.Closed || c.Reason != fsm.ReasonPeerLeft || !errors.Is(c.Err, fsm.ErrPeerLeft) ||
			!errors.As(c.Err, &ce) || ce.Code != websocket.CloseNormalClosure {
			t.Errorf("offline: %v, want alive → closed (peer left) with the 1000 close error", c)
		}
	case <-time.After(bound):
		t.Fatal("never offline")
	}
}

// TestDataSurvivesScratchReuse: with application-level heartbeats the read
// loop reads into a reused buffer; messages handed to Read stay intact
// while later heartbeats and messages reuse it, short and long alike.
func TestDataSurvivesScratchReuse(t *testing.T) {
	sws, cws := wsPair(t, wire.Subprotocols(), nil)
	s, err := Wrap(sws, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Bind(conformance.NewRecorder()); err != nil {
		t.Fatal(err)
	}
	defer s.Close(nil)
	hb, _ := wire.AppendBinary(nil, &wire.Message{Type: wire.Ping, Seq: 7})
	long := bytes.Repeat([]byte("L"), 3*wire.MaxMessageSize)
	exact := bytes.Repeat([]byte("E"), wire.MaxMessageSize+1)
	want := [][]byte{[]byte("short"), long, exact, []byte("after")}
	for _, m := range [][]byte{want[0], hb, want[1], hb, want[2], hb, want[3], hb} {
		if err := cws.WriteMessage(websocket.BinaryMessage, m); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	var got [][]byte
	for range want {
		_, p, err := s.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p)
	}
	// Read past the last heartbeat: the loop has reused its buffer since.
	if err := cws.WriteMessage(websocket.BinaryMessage, []byte("xxxxxxxxxxxx")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Read(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("message %d: %d bytes %.12q…, want %d bytes %.12q…", i, len(got[i]), got[i], len(want[i]), want[i])
		}
	}
}

// TestUserVisibleErrorsWrap: the errors an application sees keep their
// causes for errors.Is and errors.As: a refused dial (the change and the
// backoff's give-up), and a connection broken without a close frame (Read
// and Offline), which is a death (peer closed), not a leaving.
func TestUserVisibleErrorsWrap(t *testing.T) {
	t.Run("dial", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		_ = ln.Close() // nothing listens there now: the dial is refused
		changes := make(chan fsm.Change, 8)
		cfg := fsm.DriverConfig{Config: testConfig(fsm.Client), Dialer: &Dialer{URL: "ws://" + addr + "/ws"},
			OnChange: func(c fsm.Change) { changes <- c }}
		cfg.Backoff = &policy.Constant{Delay: time.Millisecond, MaxAttempts: 1}
		d, err := fsm.Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		c := <-changes
		var op *net.OpError
		if c.Reason != fsm.ReasonDialFailed || !errors.As(c.Err, &op) || !errors.Is(c.Err, syscall.ECONNREFUSED) {
			t.Errorf("dial failure %v: want the *net.OpError and ECONNREFUSED inside", c)
		}
		select {
		case <-d.Done():
		case <-time.After(bound):
			t.Fatal("the backoff never gave up")
		}
		var gu *policy.GaveUpError
		if !errors.Is(d.Err(), policy.ErrGaveUp) || !errors.As(d.Err(), &gu) {
			t.Errorf("driver Err %v, want a *policy.GaveUpError", d.Err())
		}
	})
	t.Run("broken", func(t *testing.T) {
		sws, cws := wsPair(t, nil, nil)
		s, err := Wrap(sws, Options{})
		if err != nil {
			t.Fatal(err)
		}
		online, offline := make(chan struct{}), make(chan fsm.Change, 1)
		d, err := s.Watch(context.Background(), fsm.DriverConfig{Config: testConfig(fsm.Server)},
			fsm.Presence{Online: func() { close(online) }, Offline: func(c fsm.Change) { offline <- c }})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		<-online
		_ = cws.NetConn().Close() // no close frame
		ctx, cancel := context.WithTimeout(context.Background(), bound)
		defer cancel()
		var ce *websocket.CloseError
		if _, _, err := s.Read(ctx); !errors.As(err, &ce) || ce.Code != websocket.CloseAbnormalClosure {
			t.Errorf("Read: %v, want gorilla's 1006 close error", err)
		}
		c := <-offline
		if c.Reason != fsm.ReasonPeerClosed || errors.Is(c.Err, fsm.ErrPeerLeft) || !errors.As(c.Err, &ce) {
			t.Errorf("offline %v, want dead (peer closed) with gorilla's error", c)
		}
	})
}

// closedEvents records the read loop's end.
type closedEvents struct{ closed chan error }

func (closedEvents) Frame(transport.Frame) {}
func (e closedEvents) Closed(err error)    { e.closed <- err }

// TestSendAfterPeerCloseIsPeerClosed: once the peer's close frame has
// arrived, gorilla has answered it and refuses writes; a heartbeat sent
// then fails as transport.ErrPeerClosed, and the machine reports the loss
// as peer closed, not send failed (what a client saw after its server
// was stopped and continued: "send pong: websocket: close sent").
func TestSendAfterPeerCloseIsPeerClosed(t *testing.T) {
	for _, subprotocols := range [][]string{nil, wire.Subprotocols()} {
		sws, cws := wsPair(t, subprotocols, nil)
		c, err := Wrap(cws, Options{})
		if err != nil {
			t.Fatal(err)
		}
		ev := closedEvents{closed: make(chan error, 1)}
		if err := c.Bind(ev); err != nil {
			t.Fatal(err)
		}
		msg := websocket.FormatCloseMessage(websocket.CloseGoingAway, "restarting")
		if err := sws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(bound)); err != nil {
			t.Fatal(err)
		}
		select {
		case <-ev.closed:
		case <-time.After(bound):
			t.Fatal("the peer's close never ended the read loop")
		}
		sendErr := c.Send(context.Background(), transport.Frame{Kind: transport.Pong, Seq: 1})
		if !errors.Is(sendErr, transport.ErrPeerClosed) || !errors.Is(sendErr, websocket.ErrCloseSent) {
			t.Fatalf("%v: send after the peer's close: %v, want ErrPeerClosed wrapping gorilla's ErrCloseSent", subprotocols, sendErr)
		}
		m, err := fsm.NewMachine(testConfig(fsm.Client))
		if err != nil {
			t.Fatal(err)
		}
		now := time.Unix(0, 0)
		m.Step(now, fsm.Input{Kind: fsm.Start}, nil)
		m.Step(now, fsm.Input{Kind: fsm.Connected}, nil)
		m.Step(now, fsm.Input{Kind: fsm.FrameIn, Frame: transport.Frame{Kind: transport.Pong}}, nil)
		var lost fsm.Action
		for _, a := range m.Step(now, fsm.Input{Kind: fsm.SendFailed, Err: sendErr}, nil) {
			if a.Kind == fsm.StateChanged && a.To == fsm.Dead {
				lost = a
			}
		}
		if lost.Reason != fsm.ReasonPeerClosed {
			t.Fatalf("machine after the failed send: %+v, want dead (peer closed)", lost)
		}
		_ = c.Close(nil)
	}
}
