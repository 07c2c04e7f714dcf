package proptest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/benbjohnson/clock"
	lfsm "github.com/looplab/fsm"
	"pgregory.net/rapid"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/policy"
	"github.com/heartbeat-go/heartbeat/transport"
	"github.com/heartbeat-go/heartbeat/transport/mem"
)

// L4: the goroutine driver. A client fsm.Run and a server fsm.Run per
// accepted connection talk over transport/mem inside a testing/synctest
// bubble (rapid.SyncTest), where clock.New() runs on the bubble's fake
// time: every timeout is exact and no test sleeps. Random delays, cuts,
// half-open links and server crashes are applied between waits.

const (
	drvSuspect  = 3 * time.Second
	drvDead     = 5 * time.Second
	drvEvery    = time.Second
	drvProbe    = 500 * time.Millisecond
	drvMaxDelay = 1500 * time.Millisecond // drvEvery + drvMaxDelay < drvSuspect: a healthy link is never suspect
)

// changeLog records a driver's state changes and checks each against the
// declaration as it arrives.
type changeLog struct {
	mu      sync.Mutex
	ref     *lfsm.FSM
	changes []fsm.Change
	bad     []string
}

func newChangeLog() *changeLog {
	return &changeLog{ref: reference()}
}

func (l *changeLog) record(c fsm.Change) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := len(l.changes); n > 0 && c.At.Before(l.changes[n-1].At) {
		l.bad = append(l.bad, fmt.Sprintf("change %v reported before the previous one", c))
	}
	if l.ref.Current() != c.From.String() {
		l.bad = append(l.bad, fmt.Sprintf("change %v does not start from %v", c, l.ref.Current()))
	}
	moved := false
	for _, e := range fsm.Transitions() {
		if e.To == c.To && l.ref.Can(e.Event.String()) {
			_ = l.ref.Event(context.Background(), e.Event.String())
			moved = true
			break
		}
	}
	if !moved {
		l.bad = append(l.bad, fmt.Sprintf("change %v is not an edge of the declaration", c))
		l.ref.SetState(c.To.String())
	}
	l.changes = append(l.changes, c)
}

func (l *changeLog) since(at time.Time) []fsm.Change {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []fsm.Change
	for _, c := range l.changes {
		if !c.At.Before(at) {
			out = append(out, c)
		}
	}
	return out
}

// serverSide accepts connections and runs a server driver on each.
type serverSide struct {
	mu      sync.Mutex
	ends    []*mem.Conn
	drivers []*fsm.Driver
	l       *mem.Listener
}

func newServerSide(errorf func(string, ...any), clk clock.Clock, suspect, dead time.Duration) *serverSide {
	s := &serverSide{}
	s.l = mem.Listen(clk, func(c *mem.Conn) {
		d, err := fsm.Run(context.Background(), fsm.DriverConfig{
			Config: fsm.Config{
				Role:     fsm.Server,
				Detector: &policy.Fixed{SuspectAfter: suspect, DeadAfter: dead},
				Interval: &policy.Listen{},
			},
			Dialer: transport.Accepted(func(ev transport.Events) (transport.Conn, error) {
				c.Bind(ev)
				return c, nil
			}),
			Clock: clk,
		})
		if err != nil {
			errorf("server driver: %v", err)
			_ = c.Close(err)
			return
		}
		s.mu.Lock()
		s.ends = append(s.ends, c)
		s.drivers = append(s.drivers, d)
		s.mu.Unlock()
	})
	return s
}

func (s *serverSide) last() *mem.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ends) == 0 {
		return nil
	}
	return s.ends[len(s.ends)-1]
}

func (s *serverSide) pongs() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.ends {
		n += c.Sent(transport.Pong)
	}
	return n
}

func (s *serverSide) stop() {
	s.l.Crash(errors.New("proptest: test over"))
	s.mu.Lock()
	ds := s.drivers
	s.mu.Unlock()
	for _, d := range ds {
		_ = d.Close()
	}
}

func driverProperty(t *rapid.T) {
	clk := clock.New() // on the bubble's fake time
	start := clk.Now()
	srv := newServerSide(t.Errorf, clk, drvSuspect, drvDead)
	log := newChangeLog()
	d, err := fsm.Run(context.Background(), fsm.DriverConfig{
		Config: fsm.Config{
			Detector: &policy.Fixed{SuspectAfter: drvSuspect, DeadAfter: drvDead},
			Interval: &policy.Idle{Every: drvEvery, Probe: drvProbe},
			Backoff:  &policy.Constant{Delay: drawDur(t, "redial delay", 0, 2*time.Second)},
		},
		Dialer:   srv.l,
		Clock:    clk,
		OnChange: log.record,
	})
	if err != nil {
		t.Fatal(err)
	}
	// On failure too: a goroutine left in the bubble would turn the
	// failure into synctest's deadlock panic.
	t.Cleanup(func() {
		_ = d.Close()
		srv.stop()
	})
	fail := func(format string, args ...any) {
		t.Fatalf("[%s %s] at %v: %s\nchanges: %v", L4, invariantName(L4), clk.Now().Sub(start), fmt.Sprintf(format, args...), log.since(start))
	}
	wait := func(dur time.Duration) {
		tm := clk.Timer(dur)
		<-tm.C
		synctest.Wait()
	}
	synctest.Wait()

	var brokeAt time.Time     // when the current connection was cut or went half-open
	delay := time.Duration(0) // the longest delay set on the current connection
	healthySince := start
	for i := range rapid.IntRange(1, 8).Draw(t, "steps") {
		switch rapid.IntRange(0, 5).Draw(t, fmt.Sprintf("step %d", i)) {
		case 0, 1:
			wait(drawDur(t, fmt.Sprintf("step %d wait", i), 0, 4*drvDead))
		case 2:
			if c := srv.last(); c != nil && brokeAt.IsZero() {
				d := drawDur(t, fmt.Sprintf("step %d delay", i), 0, drvMaxDelay)
				c.SetDelay(d)
				delay = max(delay, d) // frames sent before a change may still be in flight
			}
		case 3:
			if c := srv.last(); c != nil && brokeAt.IsZero() && d.State() == fsm.Alive {
				if rapid.Bool().Draw(t, fmt.Sprintf("step %d half-open", i)) {
					c.SetDrop(true) // the server's frames vanish; the client's still arrive
				} else {
					c.Cut()
				}
				brokeAt = clk.Now()
			}
		case 4:
			srv.l.Crash(errors.New("proptest: server restart"))
			synctest.Wait()
			srv.l.SetDown(false)
			if brokeAt.IsZero() { // a cut link carries no close: the client must still find out
				delay, healthySince = 0, clk.Now()
			}
		case 5:
			wait(drawDur(t, fmt.Sprintf("step %d wait", i), 0, drvDead))
		}
		if !brokeAt.IsZero() {
			// Completeness: dead within the dead timeout plus frames in flight.
			bound := brokeAt.Add(drvDead + delay)
			dead := false
			for _, c := range log.since(brokeAt) {
				if c.To == fsm.Dead {
					dead = true
					if c.At.After(bound) {
						fail("link broken at %v, dead only at %v (bound %v)", brokeAt.Sub(start), c.At.Sub(start), bound.Sub(start))
					}
				}
			}
			if !dead && clk.Now().After(bound) {
				fail("link broken at %v, still %v at %v (bound %v)", brokeAt.Sub(start), d.State(), clk.Now().Sub(start), bound.Sub(start))
			}
			if dead {
				brokeAt, delay, healthySince = time.Time{}, 0, clk.Now()
			}
		}
		if brokeAt.IsZero() {
			// Accuracy: nothing but reconnects while the link is healthy.
			for _, c := range log.since(healthySince.Add(1)) { // strictly after: the verdict that ended the broken link is not one
				if (c.To == fsm.Suspect || c.To == fsm.Dead) && (c.Reason == fsm.ReasonSilence || c.Reason == fsm.ReasonUnanswered) {
					fail("%v on a healthy link (delay at most %v)", c, drvMaxDelay)
				}
			}
		}
	}
	// Ping rate: pings at least drvProbe apart on each connection, so the
	// server answered no more than that allows.
	elapsed := clk.Now().Sub(start)
	srv.mu.Lock()
	conns := len(srv.ends)
	srv.mu.Unlock()
	if got, limit := srv.pongs(), int(elapsed/drvProbe)+conns; got > limit {
		fail("the server answered %d pings in %v over %d connections: more than one per %v", got, elapsed, conns, drvProbe)
	}
	if err := d.Close(); err != nil {
		fail("Close: %v", err)
	}
	select {
	case <-d.Done():
	default:
		fail("Close returned before the driver's goroutine ended")
	}
	if !errors.Is(d.Err(), fsm.ErrClosed) {
		fail("after Close, Err is %v", d.Err())
	}
	n := len(log.since(start))
	srv.stop()
	wait(time.Minute) // nothing more may happen
	if got := len(log.since(start)); got != n {
		fail("%d state changes after Close", got-n)
	}
	log.mu.Lock()
	bad := log.bad
	log.mu.Unlock()
	if len(bad) > 0 {
		fail("%v", bad)
	}
}

func TestDriverInSynctestBubbles(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		rapid.SyncTest(t, driverProperty)
	})
}
