package fsm

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/benbjohnson/clock"
	"go.uber.org/goleak"

	"github.com/heartbeat-go/heartbeat/policy"
	"github.com/heartbeat-go/heartbeat/transport"
	"github.com/heartbeat-go/heartbeat/transport/mem"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// peer is the far end of an in-memory connection: it answers pings with
// pongs (as a browser does) unless silent.
type peer struct {
	conn   *mem.Conn
	silent atomic.Bool
	pings  atomic.Int32
	closed atomic.Bool
}

func (p *peer) Frame(f transport.Frame) {
	if f.Kind != transport.Ping {
		return
	}
	p.pings.Add(1)
	if !p.silent.Load() {
		_ = p.conn.Send(context.Background(), transport.Frame{Kind: transport.Pong, Seq: f.Seq, Payload: f.Payload})
	}
}

func (p *peer) Closed(error) { p.closed.Store(true) }

// server accepts in-memory connections and answers them with peers.
type server struct {
	mu    sync.Mutex
	peers []*peer
	l     *mem.Listener
}

func newServer(clk clock.Clock) *server {
	s := &server{}
	s.l = mem.Listen(clk, func(c *mem.Conn) {
		p := &peer{conn: c}
		s.mu.Lock()
		s.peers = append(s.peers, p)
		s.mu.Unlock()
		c.Bind(p)
	})
	return s
}

func (s *server) last() *peer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peers[len(s.peers)-1]
}

func (s *server) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.peers {
		_ = p.conn.Close(nil)
	}
}

// recorder collects state changes in order.
type recorder struct {
	mu      sync.Mutex
	changes []Change
}

func (r *recorder) record(c Change) {
	r.mu.Lock()
	r.changes = append(r.changes, c)
	r.mu.Unlock()
}

func (r *recorder) all() []Change {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Change(nil), r.changes...)
}

func (r *recorder) first(to State) (Change, bool) {
	for _, c := range r.all() {
		if c.To == to {
			return c, true
		}
	}
	return Change{}, false
}

// mockRun starts, inside a synctest bubble, a client driver with cfg on a
// mock clock against an in-memory server that answers pings, recording
// every change; both are closed when the test ends. Inside the bubble the
// mock clock's Add processes each timer at its exact time and lets the
// bubble settle after each (its 1 ms pause returns only when every
// goroutine is blocked), so timings are exact.
func mockRun(t *testing.T, cfg Config) (clk *clock.Mock, srv *server, rec *recorder, d *Driver) {
	t.Helper()
	clk = clock.NewMock()
	srv = newServer(clk)
	rec = &recorder{}
	d, err := Run(context.Background(), DriverConfig{Config: cfg, Dialer: srv.l, Clock: clk, OnChange: rec.record})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.Close()
		srv.closeAll()
	})
	synctest.Wait()
	return clk, srv, rec, d
}

func TestDriverSilentPeerIsDeadAtExactTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk, srv, rec, d := mockRun(t, testConfig())
		start := time.Unix(0, 0)
		srv.last().silent.Store(true)
		clk.Add(15*time.Second + 500*time.Millisecond)
		synctest.Wait()
		dead, ok := rec.first(Dead)
		if !ok {
			t.Fatalf("no death; changes %v", rec.all())
		}
		if got := dead.At.Sub(start); got != 15*time.Second {
			t.Fatalf("dead at %v, want exactly 15s", got)
		}
		if got := srv.last().pings.Load(); got != 6 {
			t.Fatalf("%d pings before death, want 6 (5 s, 10 s, then probes at 11–14 s)", got)
		}
		if d.State() != Reconnecting {
			t.Fatalf("state %v", d.State())
		}
	})
}

func TestDriverAnsweredPeerStaysAlive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk, srv, rec, d := mockRun(t, testConfig())
		clk.Add(time.Hour)
		synctest.Wait()
		if got := rec.all(); len(got) != 1 || got[0].To != Alive {
			t.Fatalf("changes %v, want only connecting → alive", got)
		}
		// Idle for an hour, pinging after 5 s of silence each time.
		if got := srv.last().pings.Load(); got != 720 {
			t.Fatalf("%d pings in an hour, want 720", got)
		}
		d.Close()
		if d.State() != Closed || !errors.Is(d.Err(), ErrClosed) {
			t.Fatalf("after Close: %v %v", d.State(), d.Err())
		}
	})
}

func TestDriverReconnectsAfterServerRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		cfg.Backoff = &tableBackoff{delays: []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}}
		clk, srv, rec, _ := mockRun(t, cfg)
		start := time.Unix(0, 0)
		clk.Add(10 * time.Second)
		srv.l.Crash(errors.New("restart"))
		synctest.Wait()
		clk.Add(2 * time.Second) // dial at 11 s refused
		synctest.Wait()
		srv.l.SetDown(false)
		clk.Add(10 * time.Second) // dial at 13 s succeeds
		synctest.Wait()
		var got []string
		for _, c := range rec.all() {
			got = append(got, c.At.Sub(start).String()+" "+c.To.String()+" "+c.Reason.String())
		}
		want := []string{
			"0s alive connected",
			"10s dead peer closed", "10s reconnecting retry",
			"11s connecting backoff elapsed", "11s reconnecting dial failed",
			"13s connecting backoff elapsed", "13s alive connected",
		}
		if len(got) != len(want) {
			t.Fatalf("changes\n%v\nwant\n%v", got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("changes\n%v\nwant\n%v", got, want)
			}
		}
		if !errors.Is(rec.all()[4].Err, mem.ErrRefused) {
			t.Fatalf("dial failure cause %v", rec.all()[4].Err)
		}
	})
}

// blockingDialer never completes a dial until its context ends.
type blockingDialer struct{ dials atomic.Int32 }

func (b *blockingDialer) Dial(ctx context.Context, _ transport.Events) (transport.Conn, error) {
	b.dials.Add(1)
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestDriverCloseFromEveryState(t *testing.T) {
	for _, want := range []State{Connecting, Alive, Suspect, Reconnecting} {
		t.Run(want.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				clk := clock.NewMock()
				srv := newServer(clk)
				var dialer transport.Dialer = srv.l
				if want == Connecting {
					dialer = &blockingDialer{}
				}
				d, err := Run(context.Background(), DriverConfig{Config: testConfig(), Dialer: dialer, Clock: clk})
				if err != nil {
					t.Fatal(err)
				}
				defer srv.closeAll()
				defer d.Close()
				synctest.Wait()
				switch want {
				case Suspect:
					srv.last().silent.Store(true)
					clk.Add(12 * time.Second)
				case Reconnecting:
					srv.l.Crash(nil)
					srv.l.SetDown(false)
				}
				synctest.Wait()
				if d.State() != want {
					t.Fatalf("reached %v, want %v", d.State(), want)
				}
				d.Close()
				<-d.Done()
				if d.State() != Closed || !errors.Is(d.Err(), ErrClosed) {
					t.Fatalf("after Close: %v %v", d.State(), d.Err())
				}
				synctest.Wait() // the close notice travels to the peer
				if want == Alive && !srv.last().closed.Load() {
					t.Fatal("Close left the connection open")
				}
			})
		})
	}
}

func TestDriverStopsOnContextCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		srv := newServer(nil)
		d, err := Run(ctx, DriverConfig{Config: testConfig(), Dialer: srv.l})
		if err != nil {
			t.Fatal(err)
		}
		defer srv.closeAll()
		defer d.Close()
		synctest.Wait()
		cancel()
		<-d.Done()
		if d.State() != Closed || !errors.Is(d.Err(), context.Canceled) {
			t.Fatalf("after cancel: %v %v", d.State(), d.Err())
		}
	})
}

func TestDriverCloseFromOnChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newServer(nil)
		var d *Driver
		ready := make(chan struct{})
		var err error
		d, err = Run(context.Background(), DriverConfig{Config: testConfig(), Dialer: srv.l, OnChange: func(c Change) {
			<-ready
			if c.To == Alive {
				d.Close() // must not deadlock
			}
		}})
		if err != nil {
			t.Fatal(err)
		}
		defer srv.closeAll()
		close(ready)
		<-d.Done()
		if d.State() != Closed {
			t.Fatalf("state %v", d.State())
		}
	})
}

// failingConn fails every send.
type failingConn struct{ closed atomic.Bool }

var errBrokenPipe = errors.New("broken pipe")

func (f *failingConn) Send(context.Context, transport.Frame) error { return errBrokenPipe }
func (f *failingConn) Close(error) error                           { f.closed.Store(true); return nil }

func TestDriverSendFailureIsDeath(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		conn := &failingConn{}
		rec := &recorder{}
		cfg := DriverConfig{Config: testConfig(), OnChange: rec.record}
		cfg.Role = Server
		cfg.Dialer = transport.Accepted(func(transport.Events) (transport.Conn, error) { return conn, nil })
		d, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		<-d.Done() // the server role ends with its peer
		dead, _ := rec.first(Dead)
		if dead.Reason != ReasonSendFailed || !conn.closed.Load() {
			t.Fatalf("dead %+v, conn closed %v", dead, conn.closed.Load())
		}
		if !errors.Is(d.Err(), errBrokenPipe) {
			t.Fatalf("server driver ended with %v", d.Err())
		}
		d.Close() // after the end: returns at once
	})
}

// Two real drivers on the real clock (fake time inside the bubble): a client
// and a server over a 50 ms link stay alive for a day; a silent partition is
// detected by both within their dead timeouts.
func TestDriversBothSidesDetectPartition(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var serverEnd *mem.Conn
		var serverDriver *Driver
		srvRec, cliRec := &recorder{}, &recorder{}
		l := mem.Listen(nil, func(c *mem.Conn) {
			serverEnd = c
			c.SetDelay(50 * time.Millisecond)
			cfg := DriverConfig{Config: testConfig(), OnChange: srvRec.record}
			cfg.Role = Server
			cfg.Dialer = transport.Accepted(func(ev transport.Events) (transport.Conn, error) { c.Bind(ev); return c, nil })
			var err error
			if serverDriver, err = Run(context.Background(), cfg); err != nil {
				t.Error(err)
			}
		})
		cfg := DriverConfig{Config: testConfig(), Dialer: l, OnChange: cliRec.record}
		cfg.Backoff = &policy.Constant{Delay: time.Second, MaxAttempts: 1}
		client, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = serverEnd.Close(nil) }()
		defer client.Close()
		<-time.After(24 * time.Hour)
		synctest.Wait()
		if len(cliRec.all()) != 1 || len(srvRec.all()) != 1 {
			t.Fatalf("false verdicts in a healthy day: client %v server %v", cliRec.all(), srvRec.all())
		}
		cut := time.Now()
		serverEnd.Cut()
		l.SetDown(true)
		<-time.After(time.Minute)
		synctest.Wait()
		for name, rec := range map[string]*recorder{"client": cliRec, "server": srvRec} {
			dead, ok := rec.first(Dead)
			if !ok {
				t.Fatalf("%s never noticed the partition: %v", name, rec.all())
			}
			// A frame already in flight at the cut still lands, up to the
			// 50 ms one-way delay later, and the dead timeout runs from it.
			if lag := dead.At.Sub(cut); lag > 15*time.Second+50*time.Millisecond {
				t.Fatalf("%s dead %v after the cut, bound 15.05s", name, lag)
			}
		}
		<-serverDriver.Done()
		<-client.Done() // one failed redial, then the backoff gives up
		if !errors.Is(client.Err(), policy.ErrGaveUp) {
			t.Fatalf("client ended with %v", client.Err())
		}
	})
}

func TestRunRejectsBadConfig(t *testing.T) {
	if _, err := Run(context.Background(), DriverConfig{}); err == nil {
		t.Error("no dialer accepted")
	}
	l := mem.Listen(nil, func(c *mem.Conn) { _ = c.Close(nil) })
	if _, err := Run(context.Background(), DriverConfig{Dialer: l, WriteTimeout: -1}); err == nil {
		t.Error("negative write timeout accepted")
	}
	if _, err := Run(context.Background(), DriverConfig{Dialer: l, Config: Config{ConnectTimeout: -1}}); err == nil {
		t.Error("bad machine config accepted")
	}
}

// failingDialer fails every dial at once.
type failingDialer struct{ dials atomic.Int64 }

func (f *failingDialer) Dial(context.Context, transport.Events) (transport.Conn, error) {
	f.dials.Add(1)
	return nil, errors.New("refused")
}

// A backoff of zero against a dialer that fails at once: the machine keeps
// dials 10 ms apart, and Close stops the driver.
func TestDriverZeroBackoffInstantFailureStillCloses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dialer := &failingDialer{}
		cfg := DriverConfig{Config: testConfig(), Dialer: dialer}
		cfg.Backoff = &policy.Constant{}
		d, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		<-time.After(time.Second)
		synctest.Wait()
		if n := dialer.dials.Load(); n < 90 || n > 101 {
			t.Fatalf("%d dials in one second, want about 100 (10 ms apart)", n)
		}
		d.Close()
		if d.State() != Closed {
			t.Fatalf("state %v", d.State())
		}
	})
}

func TestDriverPongEchoesPingSeq(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		client, server := mem.Pipe(nil)
		got := make(chan transport.Frame, 1)
		client.Bind(frameFunc(func(f transport.Frame) {
			if f.Kind == transport.Pong {
				got <- f
			}
		}))
		cfg := DriverConfig{Config: testConfig()}
		cfg.Role = Server
		cfg.Dialer = transport.Accepted(func(ev transport.Events) (transport.Conn, error) { server.Bind(ev); return server, nil })
		d, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close(nil)
		defer d.Close()
		synctest.Wait()
		_ = client.Send(context.Background(), transport.Frame{Kind: transport.Ping, Seq: 42, Payload: []byte{1, 2}})
		if f := <-got; f.Seq != 42 || string(f.Payload) != "\x01\x02" {
			t.Fatalf("pong %+v", f)
		}
	})
}

type frameFunc func(transport.Frame)

func (f frameFunc) Frame(fr transport.Frame) { f(fr) }
func (frameFunc) Closed(error)               {}

// TestDriverCloseWaitsForOnChangeElsewhere: a shutdown loop calling Close
// from its own goroutine while OnChange runs must not move on before the
// driver has finished: Close returns only once Done is closed, with Err and
// State final.
func TestDriverCloseWaitsForOnChangeElsewhere(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newServer(nil)
		defer srv.closeAll()
		inChange, release := make(chan struct{}), make(chan struct{})
		d, err := Run(context.Background(), DriverConfig{Config: testConfig(), Dialer: srv.l, OnChange: func(c Change) {
			if c.To == Alive {
				close(inChange)
				<-release
			}
		}})
		if err != nil {
			t.Fatal(err)
		}
		<-inChange
		closed := make(chan struct{})
		go func() {
			_ = d.Close()
			close(closed)
		}()
		synctest.Wait()
		select {
		case <-closed:
			close(release)
			<-d.Done()
			t.Fatal("Close returned while OnChange still ran")
		default:
		}
		close(release)
		<-closed
		select {
		case <-d.Done():
		default:
			t.Fatal("Close returned before Done closed")
		}
		if d.State() != Closed || !errors.Is(d.Err(), ErrClosed) {
			t.Fatalf("after Close: %v, %v", d.State(), d.Err())
		}
	})
}

// stuckConn's Send blocks until its context is done while stuck is set,
// and records the deadline each write was given.
type stuckConn struct {
	stuck     atomic.Bool
	deadlines chan time.Duration
	clk       clock.Clock
}

func (s *stuckConn) Send(ctx context.Context, _ transport.Frame) error {
	dl, _ := ctx.Deadline()
	s.deadlines <- dl.Sub(s.clk.Now())
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.stuck.Load() {
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}
func (s *stuckConn) Close(error) error { return nil }

// TestDriverWriteTimeout: a heartbeat write is given WriteTimeout; a stuck
// one fails with context.DeadlineExceeded at that time (a send failure),
// and the next write, on the next connection, gets a fresh deadline.
func TestDriverWriteTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := clock.NewMock()
		conn := &stuckConn{deadlines: make(chan time.Duration, 8), clk: clk}
		conn.stuck.Store(true)
		rec := &recorder{}
		d, err := Run(context.Background(), DriverConfig{Config: testConfig(), Clock: clk, OnChange: rec.record, WriteTimeout: 2 * time.Second,
			Dialer: transport.DialerFunc(func(context.Context, transport.Events) (transport.Conn, error) { return conn, nil })})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		synctest.Wait()
		clk.Add(5 * time.Second) // the first ping: stuck
		synctest.Wait()
		if got := <-conn.deadlines; got != 2*time.Second {
			t.Fatalf("write deadline %v from now, want 2s", got)
		}
		conn.stuck.Store(false)
		clk.Add(2 * time.Second)
		synctest.Wait()
		c, ok := rec.first(Dead)
		if !ok || c.Reason != ReasonSendFailed || !errors.Is(c.Err, context.DeadlineExceeded) {
			t.Fatalf("changes %v, want dead (send failed) by the write timeout", rec.all())
		}
		clk.Add(time.Second) // redial
		synctest.Wait()
		clk.Add(5 * time.Second) // the next ping
		synctest.Wait()
		if got := <-conn.deadlines; got != 2*time.Second {
			t.Fatalf("next write deadline %v from now, want 2s", got)
		}
		if n := len(rec.all()); n != 5 || d.State() != Alive {
			t.Fatalf("the next write failed: %v", rec.all())
		}
	})
}

// TestDriverCloseFromOnConnect: a Dialer (an adapter's OnConnect) runs on
// the driver's goroutine too; Close from there must not deadlock.
func TestDriverCloseFromOnConnect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newServer(nil)
		defer srv.closeAll()
		var d *Driver
		ready := make(chan struct{})
		dialer := transport.DialerFunc(func(ctx context.Context, ev transport.Events) (transport.Conn, error) {
			<-ready
			_ = d.Close() // must not wait for itself
			return srv.l.Dial(ctx, ev)
		})
		var err error
		if d, err = Run(context.Background(), DriverConfig{Config: testConfig(), Dialer: dialer}); err != nil {
			t.Fatal(err)
		}
		close(ready)
		<-d.Done()
		if d.State() != Closed || !errors.Is(d.Err(), ErrClosed) {
			t.Fatalf("after Close from the dialer: %v %v", d.State(), d.Err())
		}
	})
}

// A server driver's TimeoutAdvice rides its pings, not its pongs.
func TestDriverPingsCarryTimeoutAdvice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		client, server := mem.Pipe(nil)
		got := make(chan transport.Frame, 16)
		client.Bind(frameFunc(func(f transport.Frame) { got <- f }))
		cfg := DriverConfig{Config: testConfig(), TimeoutAdvice: func() time.Duration { return 20 * time.Second }}
		cfg.Role = Server
		cfg.Interval = &policy.Listen{Advise: time.Minute} // pings at connect
		cfg.Dialer = transport.Accepted(func(ev transport.Events) (transport.Conn, error) { server.Bind(ev); return server, nil })
		d, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close(nil)
		defer d.Close()
		synctest.Wait()
		if f := <-got; f.Kind != transport.Ping || f.TimeoutAdvice != 20*time.Second {
			t.Fatalf("the server's first frame %+v, want a ping advising 20s", f)
		}
		_ = client.Send(context.Background(), transport.Frame{Kind: transport.Ping, Seq: 42})
		synctest.Wait()
		if f := <-got; f.Kind != transport.Pong || f.TimeoutAdvice != 0 {
			t.Fatalf("the pong %+v carries advice", f)
		}
	})
}
