package fsm

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/heartbeat-go/heartbeat/policy"
)

// TestPeerLeftIsNotADeath: a clean close by the peer (ErrPeerLeft) ends a
// server's connection as closed (peer left) and sends a client straight to
// reconnecting, neither through dead.
func TestPeerLeftIsNotADeath(t *testing.T) {
	for _, role := range []Role{Server, Client} {
		for _, from := range []State{Alive, Suspect} {
			t.Run(role.String()+"/"+from.String(), func(t *testing.T) {
				cfg := testConfig()
				cfg.Role = role
				r := newRig(t, cfg).connected()
				if from == Suspect {
					r.wakeUntil(Suspect, time.Minute)
				}
				cause := errors.Join(ErrPeerLeft, errors.New("websocket: close 1000 (normal)"))
				acts := r.step(Input{Kind: PeerClosed, Err: cause})
				if _, ok := change(acts, Dead); ok {
					t.Fatalf("a clean close went through dead: %v", acts)
				}
				want := Closed
				if role == Client {
					want = Reconnecting
				}
				c, ok := change(acts, want)
				if !ok || c.From != from || c.Reason != ReasonPeerLeft || !errors.Is(c.Err, ErrPeerLeft) {
					t.Fatalf("changes %+v, want %v → %v (peer left)", acts, from, want)
				}
				if count(acts, CloseTransport) != 1 {
					t.Errorf("the transport was not closed")
				}
			})
		}
	}
}

// TestClientGivesUpFromAliveWhenThePeerLeaves: the backoff may refuse the
// redial after a clean close; the client closes from alive.
func TestClientGivesUpFromAliveWhenThePeerLeaves(t *testing.T) {
	cfg := testConfig()
	cfg.Backoff = &policy.Constant{Delay: time.Second, MaxAttempts: 1}
	r := newRig(t, cfg).connected()
	r.step(Input{Kind: PeerClosed, Err: ErrPeerLeft})
	r.wake()
	r.step(Input{Kind: Connected})
	acts := r.step(Input{Kind: PeerClosed, Err: ErrPeerLeft}) // short-lived: attempt 2
	if c, ok := change(acts, Closed); !ok || c.From != Alive || c.Reason != ReasonGaveUp || !errors.Is(c.Err, policy.ErrGaveUp) {
		t.Fatalf("changes %+v, want alive → closed (gave up)", acts)
	}
}

// TestDriverDialTimeoutIsConnectTimeout: a dial that runs into the connect
// deadline is reported as the connect timeout, not as a failed dial whose
// cause happens to be context.DeadlineExceeded.
func TestDriverDialTimeoutIsConnectTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		clk := clock.NewMock()
		d, err := Run(context.Background(), DriverConfig{Config: testConfig(), Dialer: &blockingDialer{}, Clock: clk, OnChange: rec.record})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		synctest.Wait()
		clk.Add(DefaultConnectTimeout)
		synctest.Wait()
		c, ok := rec.first(Reconnecting)
		if !ok || c.Reason != ReasonConnectTimeout || !errors.Is(c.Err, ErrConnectTimeout) {
			t.Fatalf("the timed-out dial was reported as %v (%v), want connect timeout", c.Reason, c.Err)
		}
	})
}

// TestDriverCancelDuringDialIsOnlyAClose: cancelling the context (SIGINT)
// while a dial runs closes the driver with one change, connecting →
// closed; no spurious connecting → reconnecting (dial failed) first.
func TestDriverCancelDuringDialIsOnlyAClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		rec := &recorder{}
		bd := &blockingDialer{}
		d, err := Run(ctx, DriverConfig{Config: testConfig(), Dialer: bd, OnChange: rec.record})
		if err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if bd.dials.Load() != 1 {
			t.Fatalf("%d dials in progress, want 1", bd.dials.Load())
		}
		cancel()
		<-d.Done()
		all := rec.all()
		if len(all) != 1 || all[0].From != Connecting || all[0].To != Closed || !errors.Is(all[0].Err, context.Canceled) {
			t.Fatalf("changes %v, want only connecting → closed (context canceled)", all)
		}
	})
}

// TestDriverPeerGoneBeforeDeferredClose: the peer left, the handler's Read
// failed, and its deferred Close reached the driver before the driver had
// stepped the transport's report. Offline must say the peer closed, not
// user close.
func TestDriverPeerGoneBeforeDeferredClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newServer(nil)
		defer srv.closeAll()
		hold, release := make(chan struct{}), make(chan struct{})
		offline := make(chan Change, 1)
		ctx, cancel := context.WithCancel(context.Background())
		cfg := testConfig()
		cfg.Role = Server
		p := Presence{Offline: func(c Change) { offline <- c }}
		d, err := Run(ctx, DriverConfig{Config: cfg, Dialer: srv.l, OnChange: p.OnChange(func(c Change) {
			if c.To == Alive {
				close(hold)
				<-release // the driver is busy while the peer goes and Close comes
			}
		})})
		if err != nil {
			t.Fatal(err)
		}
		<-hold
		_ = srv.last().conn.Close(ErrPeerLeft)
		synctest.Wait() // the transport has queued its report
		cancel()        // the handler's deferred Close
		close(release)
		<-d.Done()
		c := <-offline
		if c.Reason != ReasonPeerLeft || !errors.Is(c.Err, ErrPeerLeft) {
			t.Fatalf("offline for %v (%v), want peer left", c.Reason, c.Err)
		}
	})
}
