package fsm

import (
	"testing"
	"time"

	"github.com/heartbeat-go/heartbeat/policy"
	"github.com/heartbeat-go/heartbeat/transport"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// rig drives a Machine by hand on virtual time and checks, on every step,
// that each reported transition is an edge of the declaration and that the
// next deadline lies strictly in the future.
type rig struct {
	t     testing.TB
	m     *Machine
	now   time.Time
	out   []Action
	all   []Action // every action so far
	edges map[[2]State]bool
}

// testConfig: ping after 5 s idle (every 1 s while suspect), suspect after
// 10 s, dead after 15 s of silence, redial after 1 s.
func testConfig() Config {
	return Config{
		Detector: &policy.Fixed{SuspectAfter: 10 * time.Second, DeadAfter: 15 * time.Second},
		Interval: &policy.Idle{Every: 5 * time.Second, Probe: time.Second},
		Backoff:  &policy.Constant{Delay: time.Second},
	}
}

func newRig(t testing.TB, cfg Config) *rig {
	t.Helper()
	m, err := NewMachine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &rig{t: t, m: m, now: t0, edges: map[[2]State]bool{}}
}

// connected starts the machine and completes its first dial at t0.
func (r *rig) connected() *rig {
	r.step(Input{Kind: Start})
	r.step(Input{Kind: Connected})
	if r.m.State() != Alive {
		r.t.Fatalf("after connect: %v", r.m.State())
	}
	return r
}

func (r *rig) at(d time.Duration) *rig { r.now = t0.Add(d); return r }

func (r *rig) step(in Input) []Action {
	r.t.Helper()
	before := r.m.State()
	r.out = r.m.Step(r.now, in, r.out[:0])
	cur := before
	for _, a := range r.out {
		if a.Kind != StateChanged {
			continue
		}
		if a.From != cur {
			r.t.Fatalf("%v: change %v → %v does not start from the current state %v", r.now.Sub(t0), a.From, a.To, cur)
		}
		if dst, ok := Next(a.From, a.Event); !ok || dst != a.To {
			r.t.Fatalf("%v: transition %v → %v (%v) is not in the declaration", r.now.Sub(t0), a.From, a.To, a.Reason)
		}
		r.edges[[2]State{a.From, a.To}] = true
		cur = a.To
	}
	if cur != r.m.State() {
		r.t.Fatalf("reported changes end in %v, machine is in %v", cur, r.m.State())
	}
	if dl := r.m.Deadline(); !dl.IsZero() && !dl.After(r.now) {
		r.t.Fatalf("%v: deadline %v is not after now", r.now.Sub(t0), dl.Sub(t0))
	}
	r.all = append(r.all, r.out...)
	return r.out
}

// wake moves time to the deadline and steps DeadlineReached.
func (r *rig) wake() []Action {
	r.t.Helper()
	dl := r.m.Deadline()
	if dl.IsZero() {
		r.t.Fatalf("wake in %v: no deadline", r.m.State())
	}
	r.now = dl
	return r.step(Input{Kind: DeadlineReached})
}

// wakeUntil wakes the machine at each deadline until it reaches state s or
// virtual time passes limit.
func (r *rig) wakeUntil(s State, limit time.Duration) {
	r.t.Helper()
	for r.m.State() != s {
		if r.m.Deadline().IsZero() || r.m.Deadline().Sub(t0) > limit {
			r.t.Fatalf("not %v by %v; in %v", s, limit, r.m.State())
		}
		r.wake()
	}
}

func (r *rig) frame(k transport.FrameKind, seq uint64) []Action {
	return r.step(Input{Kind: FrameIn, Frame: transport.Frame{Kind: k, Seq: seq}})
}

// change returns the first reported change into s among acts.
func change(acts []Action, s State) (Action, bool) {
	for _, a := range acts {
		if a.Kind == StateChanged && a.To == s {
			return a, true
		}
	}
	return Action{}, false
}

func count(acts []Action, k ActionKind) int {
	n := 0
	for _, a := range acts {
		if a.Kind == k {
			n++
		}
	}
	return n
}

// spyDetector wraps Fixed and records what the machine tells it.
type spyDetector struct {
	policy.Fixed
	starts int
	rtts   []time.Duration
}

func (s *spyDetector) Start(time.Time)                        { s.starts++ }
func (s *spyDetector) Observe(_ time.Time, rtt time.Duration) { s.rtts = append(s.rtts, rtt) }

// tableBackoff returns delays[i-1] for attempt i and records the retries.
type tableBackoff struct {
	delays  []time.Duration
	retries []policy.Retry
}

func (b *tableBackoff) Next(r policy.Retry) (time.Duration, error) {
	b.retries = append(b.retries, r)
	if r.Attempt > len(b.delays) {
		return 0, &policy.GaveUpError{Attempts: r.Attempt - 1, Elapsed: r.Elapsed, Limit: "table exhausted"}
	}
	return b.delays[r.Attempt-1], nil
}
