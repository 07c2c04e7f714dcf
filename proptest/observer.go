package proptest

import (
	"context"
	"errors"
	"time"

	lfsm "github.com/looplab/fsm"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/policy"
)

// huge is a timeout the checks treat as "never": past it a tick would
// overflow within the lifetime of any run.
const huge = time.Duration(1) << 62

// observer checks the per-step invariants of one run as it happens and
// records what the end-of-run checks (C1) need.
type observer struct {
	w   *world
	sel Select

	model   *lfsm.FSM // the reference: looplab/fsm built from fsm.Transitions
	state   fsm.State
	started bool
	closed  bool
	dialing bool

	in      fsm.Input
	before  fsm.State
	stalls  int // late wake-ups since the last evidence
	connUp  bool
	connAt  time.Duration // when the machine saw Connected
	conn    *conn
	lastIn  time.Duration // the last evidence on this connection
	lastOut time.Duration // the last ping on this connection; -1: none
	delay   time.Duration // the last backoff delay taken

	det policy.Detector // for L1's "huge timeout" allowance

	// promises
	spacing    time.Duration // P1: least ping spacing
	maxIdle    time.Duration // P2: 0 off
	bo         *BackoffPromise
	a2         bool          // A2 is promised
	a1id       string        // the invariant a false verdict on a healthy link breaks: A1, or L3 in pause runs
	stopOnDead bool          // C1 runs end at the first verdict after the failure
	detection  time.Duration // C1 runs end this long after the failure
	flood      bool          // F1's premise holds in this run

	// B8
	attempt     int
	streakStart time.Duration
	gaveUp      error

	// C1
	failAt time.Duration // -1: no failure yet
	deadAt time.Duration // first dead verdict at or after failAt; -1: none
}

func newObserver(sel Select, det policy.Detector) *observer {
	return &observer{
		sel:     sel,
		a1id:    A1,
		model:   reference(),
		state:   fsm.Connecting,
		det:     det,
		lastOut: -1,
		failAt:  -1,
		deadAt:  -1,
	}
}

func (o *observer) fail(id, format string, args ...any) {
	if o.sel.on(id) {
		o.w.fail(id, format, args...)
	}
}

func (o *observer) begin(in fsm.Input, before fsm.State) {
	o.in, o.before = in, before
	o.gaveUp = nil
	if o.maxIdle > 0 && o.connUp && (before == fsm.Alive || before == fsm.Suspect) {
		ref := max(o.connAt, o.lastIn, o.lastOut)
		if idle := o.w.now - ref; idle > o.maxIdle {
			o.fail(P2, "the line has been idle for %v (no ping sent, no frame received since %v), longer than the promised %v", idle, ref, o.maxIdle)
		}
	}
}

func (o *observer) connected(c *conn) { o.conn = c }

func (o *observer) failure(at time.Duration) {
	if o.failAt < 0 {
		o.failAt = at
		if o.detection > 0 {
			o.w.sc.end = min(o.w.sc.end, at+o.detection+time.Millisecond)
		}
	}
}

func (o *observer) finished() { o.w.stopped = true }

// retry is called by watchedBackoff from inside Step (B8).
func (o *observer) retry(r policy.Retry) {
	want := o.attempt + 1
	if (o.before == fsm.Alive || o.before == fsm.Suspect) && o.w.now-o.connAt >= o.w.set.stableAfter {
		want = 1
	}
	if r.Attempt != want {
		o.fail(B8, "the machine asked the backoff for attempt %d, want %d (previous attempt %d, connection up since %v, StableAfter %v)", r.Attempt, want, o.attempt, o.connAt, o.w.set.stableAfter)
	}
	if r.Attempt == 1 {
		o.streakStart = o.w.now
	}
	if r.Elapsed != o.w.now-o.streakStart {
		o.fail(B8, "the machine told the backoff %v elapsed in the streak, want %v (streak began %v)", r.Elapsed, o.w.now-o.streakStart, o.streakStart)
	}
	o.attempt = r.Attempt
}

func (o *observer) step(in fsm.Input, before fsm.State, prevDeadline time.Time, acts []fsm.Action) {
	w := o.w
	now := t0.Add(w.now)
	if o.closed {
		if len(acts) > 0 {
			o.fail(M2, "closed, yet %v produced %s", describeInput(in), describeAction(acts[0]))
		}
		if st := w.m.State(); st != fsm.Closed {
			o.fail(M2, "closed, yet now in %v", st)
		}
		if !w.m.Deadline().IsZero() {
			o.fail(M2, "closed, yet a deadline %v is pending", w.m.Deadline().Sub(t0))
		}
		return
	}
	if in.Kind == fsm.Start {
		o.started = true
	}
	stalled := w.set.stallThreshold >= 0 && !prevDeadline.IsZero() && now.Sub(prevDeadline) > w.set.stallThreshold
	if in.Kind == fsm.DeadlineReached && prevDeadline.Equal(now) && len(acts) == 0 {
		o.fail(L2, "woken exactly at its deadline in %v, the machine did nothing: a wake-up for nothing", before)
	}
	firstStall := stalled && o.stalls == 0
	if stalled && (before == fsm.Alive || before == fsm.Suspect) {
		o.stalls++
	}
	if in.Kind == fsm.FrameIn {
		if before == fsm.Alive || before == fsm.Suspect {
			o.lastIn = w.now
			o.stalls = 0
		}
		if before == fsm.Suspect {
			ok := false
			for _, a := range acts {
				if a.Kind == fsm.StateChanged {
					ok = (a.To == fsm.Alive && a.Reason == fsm.ReasonEvidence) || a.Reason == fsm.ReasonPingFlood
					break
				}
			}
			if !ok {
				o.fail(E1, "a %v frame arrived while suspect, and the machine did not return to alive", in.Frame.Kind)
			}
		}
	}
	if in.Kind == fsm.Connected && before == fsm.Connecting && o.dialing {
		o.connUp = true
		o.connAt = w.now
		o.lastIn = w.now
		o.lastOut = -1
		o.stalls = 0
	}
	gaveUpSeen := false
	for _, a := range acts {
		switch a.Kind {
		case fsm.Dial:
			o.dialing = true
		case fsm.CloseTransport:
			o.dialing = false
			o.connUp = false
		case fsm.SendPing:
			if o.connUp && o.lastOut >= 0 && w.now-o.lastOut < o.spacing {
				o.fail(P1, "pings %v apart (at %v and %v), closer than the promised %v", w.now-o.lastOut, o.lastOut, w.now, o.spacing)
			}
			o.lastOut = w.now
		case fsm.StateChanged:
			o.change(a, firstStall)
			if a.Reason == fsm.ReasonGaveUp {
				gaveUpSeen = true
			}
		}
	}
	if o.gaveUp != nil {
		if !gaveUpSeen || w.m.State() != fsm.Closed {
			o.fail(B8, "the backoff gave up (%v), yet the machine is %v", o.gaveUp, w.m.State())
		}
	}
	if st := w.m.State(); st != o.state {
		o.fail(M1, "the reported changes end in %v, yet the machine is in %v", o.state, st)
	}
	o.checkDeadline(now)
}

func (o *observer) change(a fsm.Action, firstStall bool) {
	w := o.w
	if a.From != o.state {
		o.fail(M1, "change %v→%v does not start from the current state %v", a.From, a.To, o.state)
	}
	if err := o.model.Event(context.Background(), a.Event.String()); err != nil {
		o.fail(M1, "change %v→%v by event %q: the declaration refuses it: %v", a.From, a.To, a.Event, err)
	}
	if got := o.model.Current(); got != a.To.String() {
		o.fail(M1, "event %q from %v leads to %v in the declaration, the machine says %v", a.Event, a.From, got, a.To)
	}
	o.state = a.To
	switch a.To {
	case fsm.Closed:
		o.closed = true
		o.connUp = false
		o.dialing = false
		if a.Reason == fsm.ReasonGaveUp && o.gaveUp != nil && !errors.Is(a.Err, o.gaveUp) {
			o.fail(B8, "closed after the backoff gave up, but with error %v instead of the backoff's %v", a.Err, o.gaveUp)
		}
	case fsm.Dead:
		o.connUp = false
		if firstStall && a.Reason == fsm.ReasonUnanswered {
			o.fail(L3, "convicted the peer in the first step that woke late since the last frame (deadline missed by more than %v)", w.set.stallThreshold)
		}
		if a.Reason == fsm.ReasonPingFlood && o.flood {
			o.fail(F1, "an honest peer (pings at least %v apart, delay variation within %d pings) was convicted of a ping flood", floodInterval(w.set.minPing), w.set.pingBurst-1)
		}
		if o.failAt >= 0 && o.deadAt < 0 {
			o.deadAt = w.now
			if o.stopOnDead {
				w.stopped = true
			}
		}
		if o.conn != nil && o.conn.healthy && o.failAt < 0 && a.Reason == fsm.ReasonUnanswered {
			o.fail(o.a1id, "declared the peer dead on a healthy link (connected at %v, last frame at %v)", o.connAt, o.lastIn)
		}
	case fsm.Suspect:
		if o.a2 && o.conn != nil && o.conn.healthy && o.failAt < 0 {
			o.fail(A2, "suspected the peer on a healthy link (connected at %v, last frame at %v)", o.connAt, o.lastIn)
		}
	case fsm.Reconnecting:
		o.delay = a.Delay
		if b := o.bo; b != nil {
			if a.Delay < b.Min || (b.Max > 0 && a.Delay > b.Max) {
				o.fail(B1, "reconnect delay %v is outside the promised [%v, %v]", a.Delay, b.Min, b.Max)
			}
		}
	}
}

func (o *observer) checkDeadline(now time.Time) {
	w := o.w
	dl := w.m.Deadline()
	if !dl.IsZero() {
		if !dl.After(now) {
			o.fail(L1, "the next deadline %v is not after now %v", dl.Sub(t0), now.Sub(t0))
		}
		return
	}
	st := w.m.State()
	why := ""
	switch {
	case st == fsm.Closed, st == fsm.Dead && w.set.role == fsm.Server, !o.started:
		return
	case st == fsm.Connecting && o.dialing && w.set.connectTimeout < huge:
		why = "a dial is in progress"
	case st == fsm.Reconnecting && o.delay < huge:
		why = "a redial is due after " + o.delay.String()
	case st == fsm.Alive || st == fsm.Suspect:
		s, d := o.det.Timeouts()
		if (st == fsm.Alive && s < huge) || (st == fsm.Suspect && d < huge) {
			why = "the detector's timeouts are finite"
		}
	}
	if why != "" {
		o.fail(L1, "no deadline in %v, yet %s", st, why)
	}
}

// watchedBackoff lets the observer see every Retry the Machine asks about.
type watchedBackoff struct {
	b   policy.Backoff
	obs *observer
}

func (b *watchedBackoff) Next(r policy.Retry) (time.Duration, error) {
	b.obs.retry(r)
	d, err := b.b.Next(r)
	if err != nil {
		b.obs.gaveUp = err
	}
	return d, err
}
