package proptest

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/policy"
)

// CheckDetector checks a failure detector against what it promises: the
// contract of policy.Detector (D1), completeness (C1: dead within Detection
// of the last frame, whatever happened before), accuracy (A1, and A2 when
// NoSuspect: never dead while frames come at most MaxGap apart), and the
// per-step invariants of the Machine that runs it (M1, M2, L1, L2, E1).
//
// newDetector returns a fresh detector for one connection, drawing any
// randomness from r. The detector runs inside a client Machine that never
// pings; evidence is the peer's messages, at random gaps, with random loss
// and disconnections before the link turns healthy or the peer fails.
//
// A failure reports the invariant, rapid's minimal counter-example and the
// flag that replays it.
func CheckDetector(t testing.TB, newDetector func(r *rand.Rand) policy.Detector, p DetectorPromise) {
	t.Helper()
	if promiseFailed(t, p.validate()) {
		return
	}
	if newNil(t, "CheckDetector", newDetector == nil) {
		return
	}
	r := &machineRun{
		newConfig: func(r *rand.Rand) fsm.Config {
			return fsm.Config{Detector: newDetector(r), Backoff: &policy.Constant{Delay: time.Second}}
		},
		detection:    p.Detection,
		noSuspect:    p.NoSuspect,
		lifetime:     orDefault(p.Lifetime, DefaultLifetime),
		detectorOnly: true,
		net:          p.Network,
	}
	if r.detection == 0 {
		r.detection = statedBound(t, newDetector(rand.New(rand.NewPCG(1, 2))), p.Network)
	}
	props := []property{
		{[]string{D1, M1, M2, L1, L2, E1}, r.safety},
		{[]string{A1, A2}, r.accuracy},
	}
	if r.detection > 0 {
		props = append(props, property{[]string{C1}, r.completeness})
	}
	runAll(t, p.Select, props)
}

// statedBound is the detection bound a detector states under nb (see
// policy.Bounded), or 0, logged, when it states none.
func statedBound(t testing.TB, d policy.Detector, nb policy.NetworkBound) time.Duration {
	t.Helper()
	b, ok := d.(policy.Bounded)
	if !ok {
		t.Logf("proptest: C1 not checked: no Detection promised and %T states no bound (policy.Bounded)", d)
		return 0
	}
	if nb.Heartbeat <= 0 {
		t.Logf("proptest: C1 not checked: no Detection promised and no Network.Heartbeat to ask %T for its bound", d)
		return 0
	}
	bound, err := b.DetectionBound(nb)
	if err != nil {
		t.Logf("proptest: C1 not checked: %v", err)
		return 0
	}
	return bound
}

// checkedDetector checks the Detector contract (D1) after every call the
// Machine makes, against a twin built from the same seed and fed the same
// calls.
type checkedDetector struct {
	d, twin policy.Detector
	fail    func(id, format string, args ...any)
}

func (c *checkedDetector) Start(now time.Time) {
	c.d.Start(now)
	if c.twin != nil {
		c.twin.Start(now)
	}
	c.verify("Start")
}

func (c *checkedDetector) Observe(now time.Time, rtt time.Duration) {
	c.d.Observe(now, rtt)
	if c.twin != nil {
		c.twin.Observe(now, rtt)
	}
	c.verify("Observe")
}

func (c *checkedDetector) Timeouts() (suspect, dead time.Duration) { return c.d.Timeouts() }

func (c *checkedDetector) verify(after string) {
	s, d := c.d.Timeouts()
	if s <= 0 || d < s {
		c.fail(D1, "after %s the detector's timeouts are suspect %v, dead %v: need 0 < suspect <= dead", after, s, d)
	}
	if c.twin != nil {
		if s2, d2 := c.twin.Timeouts(); s2 != s || d2 != d {
			c.fail(D1, "after %s two detectors built from the same seed and fed the same calls disagree: (%v, %v) and (%v, %v)", after, s, d, s2, d2)
		}
	}
}
