package gorillaws

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/policy"
	"github.com/heartbeat-go/heartbeat/transport"
	"github.com/heartbeat-go/heartbeat/transport/conformance"
)

// Each test here shows one pitfall of gorilla/websocket users: the naive
// approach fails it, the adapter passes it.

const bound = 5 * time.Second

func testConfig(role fsm.Role) fsm.Config {
	return fsm.Config{
		Role:            role,
		Detector:        &policy.Fixed{SuspectAfter: 300 * time.Millisecond, DeadAfter: 600 * time.Millisecond},
		Interval:        &policy.Idle{Every: 100 * time.Millisecond},
		Backoff:         &policy.Constant{Delay: 50 * time.Millisecond},
		MinPingInterval: 20 * time.Millisecond,
	}
}

// watchCounting runs the server role on c, counting the pongs it gets.
func watchCounting(t *testing.T, c *Conn) (*conformance.Changes, *conformance.Counter) {
	t.Helper()
	ch := conformance.NewChanges()
	counter := conformance.NewCounter(c.Accepted())
	d, err := fsm.Run(context.Background(), fsm.DriverConfig{
		Config:   testConfig(fsm.Server),
		OnChange: ch.Add,
		Dialer:   counter,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return ch, counter
}

// TestPitfallHandlersNeedAReader (gorilla/websocket#783, #724, #866):
// gorilla runs ping handlers only inside NextReader. An application busy
// elsewhere leaves the server's pings unanswered and is declared dead; the
// adapter's own read loop answers them while the application never reads.
func TestPitfallHandlersNeedAReader(t *testing.T) {
	t.Run("naive", func(t *testing.T) {
		sws, cws := wsPair(t, nil, nil)
		s, _ := Wrap(sws, Options{})
		ch, _ := watchCounting(t, s)
		_ = cws // the application never calls NextReader
		_, c := ch.WaitFor(t, 0, "dead", conformance.To(fsm.Dead))
		if c.Reason != fsm.ReasonUnanswered {
			t.Errorf("dead for %v, want unanswered", c.Reason)
		}
	})
	t.Run("adapter", func(t *testing.T) {
		sws, cws := wsPair(t, nil, nil)
		s, _ := Wrap(sws, Options{})
		ch, pongs := watchCounting(t, s)
		c, _ := Wrap(cws, Options{})
		cd, err := fsm.Run(context.Background(), fsm.DriverConfig{Config: testConfig(fsm.Client), Dialer: c.Accepted()})
		if err != nil {
			t.Fatal(err)
		}
		defer cd.Close()
		// The application never calls Read. 12 answered pings take twice
		// the dead timeout.
		pongs.WaitPongs(t, 12, bound)
		for _, c := range ch.Verdicts(0) {
			t.Errorf("server's verdict on a peer whose application is busy: %v", c)
		}
	})
}

// gate is a net.Conn whose writes block while the gate is shut: a writer
// stuck on a slow or full link.
type gate struct {
	net.Conn
	shut    atomic.Bool
	open    chan struct{}
	blocked chan struct{} // gets a value when a write starts waiting
}

func newGate(c net.Conn) *gate {
	return &gate{Conn: c, open: make(chan struct{}), blocked: make(chan struct{}, 1)}
}

func (g *gate) Write(p []byte) (int, error) {
	if g.shut.Load() {
		select {
		case g.blocked <- struct{}{}:
		default:
		}
		<-g.open
	}
	return g.Conn.Write(p)
}

// TestPitfallBusyWriterDropsPong (gorilla/websocket#690, #97): gorilla's
// default ping handler writes the pong with a 1 s deadline and drops it if
// the writer is busy longer. The adapter's pong waits for the writer
// (within the driver's WriteTimeout) and gets through. Both clients run at
// once behind writers stuck on the same gate, which opens only after the
// naive one has given up: so the adapter's writer was busy over 1 s too.
func TestPitfallBusyWriterDropsPong(t *testing.T) {
	var naiveGate, oursGate *gate
	naiveS, naiveC := wsPair(t, nil, func(c net.Conn) net.Conn { naiveGate = newGate(c); return naiveGate })
	oursS, oursC := wsPair(t, nil, func(c net.Conn) net.Conn { oursGate = newGate(c); return oursGate })
	release := make(chan struct{})
	naiveGate.open, oursGate.open = release, release

	// The naive client: gorilla's default handlers, reading in a loop.
	afterRead := make(chan struct{})
	var readers sync.WaitGroup
	readers.Go(func() {
		for {
			_, msg, err := naiveC.ReadMessage()
			if err != nil {
				return
			}
			if string(msg) == "after" {
				close(afterRead)
			}
		}
	})
	// The adapter's client, with its driver; its application reads too.
	ours, _ := Wrap(oursC, Options{})
	cd, err := fsm.Run(context.Background(), fsm.DriverConfig{
		Config: fsm.Config{Role: fsm.Client, Detector: &policy.Fixed{SuspectAfter: time.Minute, DeadAfter: time.Minute},
			Interval: policy.Never{}, Backoff: &policy.Constant{Delay: time.Minute}},
		Dialer: ours.Accepted(), WriteTimeout: bound,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cd.Close()

	// Each server counts pongs, and notes whether one came before "marker".
	type tally struct {
		pongs        atomic.Int64
		beforeMarker atomic.Int64
		pong         chan struct{} // gets a value per pong
		marker       chan struct{}
	}
	serve := func(ws *websocket.Conn, tl *tally) {
		ws.SetPongHandler(func(string) error {
			tl.pongs.Add(1)
			select {
			case tl.pong <- struct{}{}:
			default:
			}
			return nil
		})
		readers.Go(func() {
			for {
				_, msg, err := ws.ReadMessage()
				if err != nil {
					return
				}
				if string(msg) == "marker" {
					tl.beforeMarker.Store(tl.pongs.Load())
					close(tl.marker)
				}
			}
		})
	}
	naiveT := &tally{pong: make(chan struct{}, 1), marker: make(chan struct{})}
	oursT := &tally{pong: make(chan struct{}, 1), marker: make(chan struct{})}
	serve(naiveS, naiveT)
	serve(oursS, oursT)

	// Both clients start a write that sticks.
	naiveGate.shut.Store(true)
	oursGate.shut.Store(true)
	writeDone := make(chan error, 2)
	go func() { writeDone <- naiveC.WriteMessage(websocket.TextMessage, []byte("big")) }()
	go func() { writeDone <- ours.Write(context.Background(), websocket.TextMessage, []byte("big")) }()
	<-naiveGate.blocked
	<-oursGate.blocked

	// The servers ping, then send "after".
	for _, ws := range []*websocket.Conn{naiveS, oursS} {
		if err := ws.WriteControl(websocket.PingMessage, []byte("p"), time.Now().Add(bound)); err != nil {
			t.Fatal(err)
		}
		if err := ws.WriteMessage(websocket.TextMessage, []byte("after")); err != nil {
			t.Fatal(err)
		}
	}
	// The naive reader reaches "after" only once its ping handler gave up
	// on the pong (1 s). Then the writers come unstuck.
	select {
	case <-afterRead:
	case <-time.After(bound):
		t.Fatal("naive reader never got past the ping")
	}
	naiveGate.shut.Store(false)
	oursGate.shut.Store(false)
	close(release)
	for range 2 {
		if err := <-writeDone; err != nil {
			t.Fatalf("stuck write: %v", err)
		}
	}
	// The adapter's pong, held while the writer was stuck, arrives.
	select {
	case <-oursT.pong:
	case <-time.After(bound):
		t.Fatal("the adapter's pong never arrived")
	}
	// The naive pong was dropped: nothing came before the marker written
	// after the writer came free.
	if err := naiveC.WriteMessage(websocket.TextMessage, []byte("marker")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-naiveT.marker:
	case <-time.After(bound):
		t.Fatal("no marker")
	}
	if n := naiveT.beforeMarker.Load(); n != 0 {
		t.Errorf("naive client's pong arrived (%d): the pitfall did not happen", n)
	}
	_ = naiveC.Close()
	_ = ours.Close(nil)
	_ = naiveS.Close()
	_ = oursS.Close()
	readers.Wait()
}

// deadlineConn judges write deadlines against a clock the test moves, so
// a deadline can pass without the test waiting for it.
type deadlineConn struct {
	net.Conn
	mu       sync.Mutex
	deadline time.Time
	skew     time.Duration
}

func (d *deadlineConn) SetWriteDeadline(t time.Time) error {
	d.mu.Lock()
	d.deadline = t
	d.mu.Unlock()
	return nil
}

func (d *deadlineConn) SetDeadline(t time.Time) error {
	_ = d.SetWriteDeadline(t)
	return d.Conn.SetReadDeadline(t)
}

func (d *deadlineConn) Write(p []byte) (int, error) {
	d.mu.Lock()
	dl, now := d.deadline, time.Now().Add(d.skew)
	d.mu.Unlock()
	if !dl.IsZero() && !now.Before(dl) {
		return 0, os.ErrDeadlineExceeded
	}
	return d.Conn.Write(p)
}

func (d *deadlineConn) pass(by time.Duration) {
	d.mu.Lock()
	d.skew += by
	d.mu.Unlock()
}

// TestPitfallPingDeadlineBleeds (gorilla/websocket#88, #652): the chat
// example's ping, SetWriteDeadline then WriteMessage(PingMessage), leaves
// its deadline on the connection, and the application's next data write
// fails once it passes. The adapter pings through WriteControl, whose
// deadline gorilla replaces before every data frame.
func TestPitfallPingDeadlineBleeds(t *testing.T) {
	t.Run("naive", func(t *testing.T) {
		var dc *deadlineConn
		_, cws := wsPair(t, nil, func(c net.Conn) net.Conn { dc = &deadlineConn{Conn: c}; return dc })
		_ = cws.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if err := cws.WriteMessage(websocket.PingMessage, nil); err != nil {
			t.Fatal(err)
		}
		dc.pass(time.Minute)
		var ne net.Error
		if err := cws.WriteMessage(websocket.TextMessage, []byte("data")); !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("data write after the ping's deadline: %v, want the deadline to bleed (a timeout)", err)
		}
	})
	t.Run("adapter", func(t *testing.T) {
		var dc *deadlineConn
		sws, cws := wsPair(t, nil, func(c net.Conn) net.Conn { dc = &deadlineConn{Conn: c}; return dc })
		c, _ := Wrap(cws, Options{})
		r := conformance.NewRecorder()
		if err := c.Bind(r); err != nil {
			t.Fatal(err)
		}
		defer c.Close(nil)
		s, _ := Wrap(sws, Options{})
		sr := conformance.NewRecorder()
		if err := s.Bind(sr); err != nil {
			t.Fatal(err)
		}
		defer s.Close(nil)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.Send(ctx, transport.Frame{Kind: transport.Ping, Seq: 1}); err != nil {
			t.Fatal(err)
		}
		dc.pass(time.Minute)
		if err := c.Write(context.Background(), websocket.TextMessage, []byte("via Write")); err != nil {
			t.Errorf("Write after a ping's deadline passed: %v", err)
		}
		if err := cws.WriteMessage(websocket.TextMessage, []byte("direct")); err != nil {
			t.Errorf("direct WriteMessage after a ping's deadline passed: %v", err)
		}
		sr.WaitFrame(t, transport.Ping)
		sr.WaitCount(t, transport.Data, 2)
	})
}

// TestPingFloodClosedWithReason: a peer that pings far faster than the
// machine's MinPingInterval/PingBurst allow (defaults: 100 ms, 50) is cut
// off; the server reports it offline for a ping flood and the peer reads a
// 1008 close that names the rule.
func TestPingFloodClosedWithReason(t *testing.T) {
	sws, cws := wsPair(t, nil, nil)
	s, _ := Wrap(sws, Options{})
	offline := make(chan fsm.Change, 1)
	cfg := fsm.DriverConfig{Config: fsm.Config{
		Detector: &policy.Fixed{SuspectAfter: time.Minute, DeadAfter: time.Minute},
		Interval: policy.Never{},
	}}
	d, err := s.Watch(context.Background(), cfg, fsm.Presence{Offline: func(c fsm.Change) { offline <- c }})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	closed := make(chan error, 1)
	go func() {
		for {
			if _, _, err := cws.ReadMessage(); err != nil {
				closed <- err
				return
			}
		}
	}()
	for range 200 {
		if err := cws.WriteControl(websocket.PingMessage, []byte("flood"), time.Now().Add(bound)); err != nil {
			break // cut off already
		}
	}
	select {
	case c := <-offline:
		if c.Reason != fsm.ReasonPingFlood || !errors.Is(c.Err, fsm.ErrPingFlood) {
			t.Errorf("offline for %v (%v), want ping flood", c.Reason, c.Err)
		}
	case <-time.After(bound):
		t.Fatal("flooding peer never cut off")
	}
	select {
	case err := <-closed:
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation || !strings.Contains(ce.Text, "too many pings") {
			t.Errorf("the flooder read %v, want close 1008 naming the ping flood", err)
		}
	case <-time.After(bound):
		t.Fatal("the flooder was never closed")
	}
}
