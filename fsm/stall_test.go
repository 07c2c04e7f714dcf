package fsm

import (
	"testing"
	"time"

	"github.com/heartbeat-go/heartbeat/policy"
	"github.com/heartbeat-go/heartbeat/transport"
)

// linkSim drives a client Machine with the default policies against a peer
// that answers each ping after rtt while answering is on.
type linkSim struct {
	r        *rig
	rtt      time.Duration
	answer   bool
	pongDue  time.Time // zero: no pong in flight
	pongSeq  uint64
	lastPong time.Time
}

func (l *linkSim) take(acts []Action) {
	for _, a := range acts {
		if a.Kind == SendPing && l.answer && l.pongDue.IsZero() {
			l.pongDue, l.pongSeq = l.r.now.Add(l.rtt), a.Seq
		}
	}
}

// until steps the machine through every deadline and pong up to limit, or
// until it leaves Alive and Suspect.
func (l *linkSim) until(limit time.Time) {
	for l.r.m.State() == Alive || l.r.m.State() == Suspect {
		dl := l.r.m.Deadline()
		if !l.pongDue.IsZero() && !l.pongDue.After(dl) {
			if l.pongDue.After(limit) {
				return
			}
			l.r.now = l.pongDue
			l.pongDue, l.lastPong = time.Time{}, l.r.now
			l.take(l.r.frame(transport.Pong, l.pongSeq))
			continue
		}
		if dl.After(limit) {
			return
		}
		l.take(l.r.wake())
	}
}

// convictionDelay runs a healthy default client for ten minutes, stalls it
// for stall (0: none) as a SIGSTOP would, lets the link run healthy for two
// more minutes, then silences the peer and returns how long after its last
// pong the client declared it dead.
func convictionDelay(t *testing.T, stall time.Duration) time.Duration {
	t.Helper()
	d, i, b := policy.Default()
	r := newRig(t, Config{Detector: d, Interval: i, Backoff: b})
	r.connected()
	l := &linkSim{r: r, rtt: 50 * time.Millisecond, answer: true}
	l.until(t0.Add(10 * time.Minute))
	if stall > 0 {
		// The process stood still: nothing ran, so the first step comes
		// stall late; a pong in flight was queued meanwhile.
		r.now = r.now.Add(stall)
		l.take(r.step(Input{Kind: DeadlineReached}))
		if !l.pongDue.IsZero() && l.pongDue.Before(r.now) {
			l.pongDue = r.now
		}
	}
	l.until(r.now.Add(2 * time.Minute))
	if r.m.State() != Alive && r.m.State() != Suspect {
		t.Fatalf("healthy link ended in %v", r.m.State())
	}
	l.answer = false
	l.until(r.now.Add(5 * time.Minute))
	c, ok := change(r.all, Dead)
	if !ok || c.Reason != ReasonUnanswered {
		t.Fatalf("the silent peer was never convicted (%v)", c.Reason)
	}
	return r.now.Sub(l.lastPong) // the step that convicted
}

// TestOwnStallDoesNotPoisonDetector: the silence measured across our own
// stall (a SIGSTOP of 25 s) is not the peer's lateness, and must not be
// learned: the next real failure is convicted as fast as without the stall
// (it took 26–31 s instead of 7–9 s when the detector learned it).
func TestOwnStallDoesNotPoisonDetector(t *testing.T) {
	base := convictionDelay(t, 0)
	after := convictionDelay(t, 25*time.Second)
	t.Logf("conviction %v after the last pong without a stall, %v after a 25 s stall", base, after)
	if base > 10*time.Second {
		t.Fatalf("baseline conviction took %v", base)
	}
	if after > base+time.Second {
		t.Errorf("after our own 25 s stall the next failure took %v to convict, against %v without: the stall was learned", after, base)
	}
}
