package proptest

import (
	"context"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/policy"
	"github.com/heartbeat-go/heartbeat/transport"
)

// Regression tests for bugs the harness found in fsm.Machine and
// fsm.Driver (fixed in fsm by commits 4c3b8f7, ef9d15b and 4adfea7). Each
// states the behaviour the catalogue promises.

// startedAlive returns a machine that connected at t0 + at.
func startedAlive(t *testing.T, cfg fsm.Config, at time.Duration) *fsm.Machine {
	t.Helper()
	m, err := fsm.NewMachine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m.Step(t0, fsm.Input{Kind: fsm.Start}, nil)
	m.Step(t0.Add(at), fsm.Input{Kind: fsm.Connected}, nil)
	if m.State() != fsm.Alive {
		t.Fatalf("after connect: %v", m.State())
	}
	return m
}

// F1/L3: a peer that pings at the allowed rate while our process is
// paused has its pings queued; they arrive together when we wake, and must
// not count as a flood. Found by the L3/F1 pause property for every
// preset.
func TestRegressionPingsQueuedDuringOurPauseAreNotAFlood(t *testing.T) {
	cfg := fsm.Config{
		Detector: &policy.Fixed{SuspectAfter: 15 * time.Second, DeadAfter: 25 * time.Second},
		Interval: &policy.Idle{Every: 10 * time.Second, Probe: 2 * time.Second},
		Backoff:  &policy.Constant{Delay: time.Second},
	}
	m := startedAlive(t, cfg, 0)
	// The deadline is the ping at 10 s; we wake at 20 s, a stall. The peer
	// pinged every 100 ms (fsm.DefaultMinPingInterval) meanwhile.
	now := t0.Add(20 * time.Second)
	var acts []fsm.Action
	acts = m.Step(now, fsm.Input{Kind: fsm.DeadlineReached}, acts[:0])
	for i := range 200 {
		acts = m.Step(now, fsm.Input{Kind: fsm.FrameIn, Frame: transport.Frame{Kind: transport.Ping, Seq: uint64(i + 1)}}, acts[:0])
		for _, a := range acts {
			if a.Kind == fsm.StateChanged && a.Reason == fsm.ReasonPingFlood {
				t.Fatalf("ping %d queued during our 10 s stall convicted the peer of a flood", i+1)
			}
		}
	}
}

// L1: a detector that means "never" by math.MaxInt64 (the idiom of gRPC's
// keepalive "infinity") must not convict at once by overflow.
func TestRegressionHugeDeadTimeoutDoesNotOverflow(t *testing.T) {
	m := startedAlive(t, fsm.Config{
		Detector: &policy.Fixed{SuspectAfter: time.Second, DeadAfter: math.MaxInt64},
		Interval: policy.Never{},
		Backoff:  &policy.Constant{Delay: time.Second},
	}, time.Second)
	m.Step(t0.Add(3*time.Second), fsm.Input{Kind: fsm.DeadlineReached}, nil)
	if m.State() != fsm.Suspect {
		t.Fatalf("2 s after the last frame, with a dead timeout of ~292 years: %v, want suspect", m.State())
	}
	if dl := m.Deadline(); !dl.IsZero() && !dl.After(t0.Add(3*time.Second)) {
		t.Fatalf("deadline %v is not in the future", dl.Sub(t0))
	}
}

// L1: a backoff delay of math.MaxInt64 means "do not redial"; it must not
// wrap into an immediate redial.
func TestRegressionHugeBackoffDelayDoesNotOverflow(t *testing.T) {
	m, err := fsm.NewMachine(fsm.Config{Backoff: &policy.Constant{Delay: math.MaxInt64}, Detector: &policy.Fixed{SuspectAfter: time.Second, DeadAfter: time.Second}, Interval: policy.Never{}})
	if err != nil {
		t.Fatal(err)
	}
	m.Step(t0, fsm.Input{Kind: fsm.Start}, nil)
	m.Step(t0.Add(time.Second), fsm.Input{Kind: fsm.DialFailed}, nil)
	if m.State() != fsm.Reconnecting {
		t.Fatalf("after a failed dial with a ~292-year backoff: %v, want reconnecting", m.State())
	}
}

// L1: a connect timeout of math.MaxInt64 ("no timeout") must not time
// every dial out at once.
func TestRegressionHugeConnectTimeoutDoesNotOverflow(t *testing.T) {
	m, err := fsm.NewMachine(fsm.Config{ConnectTimeout: math.MaxInt64, Backoff: &policy.Constant{Delay: time.Second},
		Detector: &policy.Fixed{SuspectAfter: time.Second, DeadAfter: time.Second}, Interval: policy.Never{}})
	if err != nil {
		t.Fatal(err)
	}
	m.Step(t0, fsm.Input{Kind: fsm.Start}, nil)
	m.Step(t0.Add(time.Second), fsm.Input{Kind: fsm.DialFailed}, nil)
	acts := m.Step(t0.Add(2*time.Second), fsm.Input{Kind: fsm.DeadlineReached}, nil)
	if m.State() != fsm.Connecting {
		t.Fatalf("the redial at 2 s: %v (actions %v), want connecting", m.State(), acts)
	}
}

// Together the overflows make Step panic: a redial that is due at once
// times out at once, and again, until the chain guard panics ("more than 8
// transitions in one step"). The harness found this on its own.
func TestRegressionHugeTimeoutsDoNotPanic(t *testing.T) {
	m, err := fsm.NewMachine(fsm.Config{ConnectTimeout: math.MaxInt64, Backoff: &policy.Constant{Delay: math.MaxInt64},
		Detector: &policy.Fixed{SuspectAfter: time.Second, DeadAfter: time.Second}, Interval: policy.Never{}})
	if err != nil {
		t.Fatal(err)
	}
	m.Step(t0, fsm.Input{Kind: fsm.Start}, nil)
	m.Step(t0.Add(time.Second), fsm.Input{Kind: fsm.DialFailed}, nil) // panicked before the fix
	if m.State() != fsm.Reconnecting {
		t.Fatalf("after a failed dial with a ~292-year backoff: %v, want reconnecting", m.State())
	}
}

// The harness checks the same for any configuration that uses such values
// (before the fix it reported the panic as M1).
func TestRegressionHugeTimeoutsThroughTheHarness(t *testing.T) {
	CheckMachine(t, func(r *rand.Rand) fsm.Config {
		return fsm.Config{
			Detector:       &policy.Fixed{SuspectAfter: 10 * time.Second, DeadAfter: math.MaxInt64},
			Interval:       &policy.Idle{Every: 5 * time.Second},
			Backoff:        &policy.Constant{Delay: math.MaxInt64},
			ConnectTimeout: math.MaxInt64,
		}
	}, MachinePromise{Select: Select{Only: []string{L1, M1, L2}}})
}

// slowConn blocks in one Send after passing the frame on, as a write that
// stalls the driver's goroutine would.
type slowConn struct {
	transport.Conn
	clk  clock.Clock
	slow *atomic.Bool
	for_ time.Duration
}

func (c *slowConn) Send(ctx context.Context, f transport.Frame) error {
	err := c.Conn.Send(ctx, f)
	if f.Kind == transport.Ping && c.slow.CompareAndSwap(true, false) {
		<-c.clk.After(c.for_)
	}
	return err
}

// L3, at the driver: when the driver wakes late a second time in one
// silence, the answer to its probe may already be waiting in its event
// queue. Before the fix fsm.Driver's select picked the late timer or the
// queued frame at random, so about half the time it convicted a peer whose
// pong it held. Here the driver stalls 6.5 s in OnChange (a stall: probe at
// 6.5 s, grace until 10.5 s), then 4.1 s inside the probe's Send, while the
// pong arrives at once.
func TestRegressionQueuedEvidenceBeatsTheLateTimer(t *testing.T) {
	for i := range 20 { // the select was random (about even odds): 20 tries all pass only without the bug
		synctest.Test(t, func(t *testing.T) {
			clk := clock.New()
			srv := newServerSide(t.Errorf, clk, 30*time.Second, time.Minute) // the server does not mind the client's stall
			defer srv.stop()
			var slow atomic.Bool
			stalled := false
			log := newChangeLog()
			d, err := fsm.Run(context.Background(), fsm.DriverConfig{
				Config: fsm.Config{
					Detector: &policy.Fixed{SuspectAfter: 6 * time.Second, DeadAfter: 10 * time.Second},
					Interval: &policy.Idle{Every: 5 * time.Second, Probe: time.Second},
					Backoff:  &policy.Constant{Delay: time.Second},
				},
				Dialer: transport.DialerFunc(func(ctx context.Context, ev transport.Events) (transport.Conn, error) {
					c, err := srv.l.Dial(ctx, ev)
					if err != nil {
						return nil, err
					}
					return &slowConn{Conn: c, clk: clk, slow: &slow, for_: 4100 * time.Millisecond}, nil
				}),
				Clock: clk,
				OnChange: func(c fsm.Change) {
					log.record(c)
					if c.To == fsm.Alive && !stalled {
						stalled = true
						<-clk.After(6500 * time.Millisecond) // the driver stands still
						slow.Store(true)
					}
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			<-clk.After(20 * time.Second)
			synctest.Wait()
			for _, c := range log.since(time.Time{}) {
				if c.To == fsm.Dead {
					t.Fatalf("try %d: %v, though the pong to the probe of 6.5 s was queued since then; changes %v", i, c, log.since(time.Time{}))
				}
			}
		})
	}
}

// L2: a zero backoff delay (policy.Constant{} is valid) against a dialer
// that fails at once must not redial at one instant for ever. Before the
// fix the Machine asked for a new dial in the same step, fsm.Driver ran
// that loop synchronously inside Driver.step, never let time pass nor
// looked at its context: it spun a core and Close never returned. The
// harness's world reports such a loop as L2 ("more than 10000 steps at one
// instant").
func TestRegressionZeroBackoffDoesNotRedialForEverAtOneInstant(t *testing.T) {
	m, err := fsm.NewMachine(fsm.Config{Backoff: &policy.Constant{}, Detector: &policy.Fixed{SuspectAfter: time.Second, DeadAfter: time.Second}, Interval: policy.Never{}})
	if err != nil {
		t.Fatal(err)
	}
	acts := m.Step(t0, fsm.Input{Kind: fsm.Start}, nil)
	for i := range maxSameInstant {
		dialed := false
		for _, a := range acts {
			dialed = dialed || a.Kind == fsm.Dial
		}
		if !dialed {
			return // it waits: time must pass before the next dial
		}
		acts = m.Step(t0, fsm.Input{Kind: fsm.DialFailed, Err: errRefused}, acts[:0])
		if i == maxSameInstant-1 {
			t.Fatalf("%d dials at one instant and still dialling", maxSameInstant)
		}
	}
}

// F1: a pause that ends before the machine is due plus StallThreshold is
// not seen as a stall, yet an honest peer's pings queue up all the same.
// Here the machine is due at 5 s (a ping); the process stands still from
// 0.1 s to 5.5 s while the peer pings every 100 ms (the allowed rate); at
// 5.5 s the 54 queued pings arrive before the timer is handled. Found by
// the L3/F1 pause property after the stall case was fixed.
func TestRegressionPingsQueuedDuringAnUnnoticedPauseAreNotAFlood(t *testing.T) {
	m := startedAlive(t, fsm.Config{
		Detector: &policy.Fixed{SuspectAfter: 6 * time.Second, DeadAfter: 10 * time.Second},
		Interval: &policy.Idle{Every: 5 * time.Second, Probe: time.Second},
		Backoff:  &policy.Constant{Delay: time.Second},
	}, 0)
	now := t0.Add(5500 * time.Millisecond)
	var acts []fsm.Action
	for i := range 54 {
		acts = m.Step(now, fsm.Input{Kind: fsm.FrameIn, Frame: transport.Frame{Kind: transport.Ping, Seq: uint64(i + 1)}}, acts[:0])
		for _, a := range acts {
			if a.Kind == fsm.StateChanged && a.Reason == fsm.ReasonPingFlood {
				t.Fatalf("ping %d, sent at the allowed rate during our 5.4 s pause, convicted the peer of a flood", i+1)
			}
		}
	}
}
