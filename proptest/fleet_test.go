package proptest

import (
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/heartbeat-go/heartbeat/policy"
)

// fleetPromise is what policy.Fleet with its defaults promises.
func fleetPromise() FleetPromise {
	tail, k := (&policy.Fleet{}).Extrapolation()
	return FleetPromise{Min: policy.MinAdvice, Max: policy.MaxAdvice, TailRate: tail, Factor: k, Resolution: 1.0 / 16}
}

func TestFleetKeepsItsPromise(t *testing.T) {
	CheckFleet(t, func() Estimator { return &policy.Fleet{} }, fleetPromise())
	CheckFleet(t, func() Estimator { return &policy.Fleet{MinTime: time.Minute, MaxClasses: 3} },
		FleetPromise{Min: policy.MinAdvice, Max: policy.MaxAdvice, Select: Select{Only: []string{Q1}}})
}

func TestAdaptiveKeepsItsBoundUnderAdvice(t *testing.T) {
	for _, nb := range []policy.NetworkBound{
		{Heartbeat: 5 * time.Second, MaxRTT: 400 * time.Millisecond},
		{Heartbeat: 25 * time.Second, MaxRTT: 400 * time.Millisecond},
	} {
		CheckAdvised(t, func(*rand.Rand) policy.Detector {
			return &policy.Adaptive{Interval: nb.Heartbeat}
		}, AdvisedPromise{Network: nb})
	}
	// And completeness (C1) and accuracy (A1) hold through a Machine with
	// any advice the detector is given at connect.
	nb := policy.NetworkBound{Heartbeat: 5 * time.Second, MaxRTT: 400 * time.Millisecond}
	CheckDetector(t, func(r *rand.Rand) policy.Detector {
		a := &policy.Adaptive{}
		a.Advise(time.Duration(r.Int64N(int64(2 * policy.MaxAdvice))))
		return a
	}, DetectorPromise{Network: nb, Select: Select{Only: []string{C1, A1}}})
}

// unclamped advises the largest silence it saw, without the cap.
type unclamped struct {
	mu  sync.Mutex
	max time.Duration
}

func (u *unclamped) Observe(_ string, _ time.Time, d time.Duration) {
	u.mu.Lock()
	u.max = max(u.max, d)
	u.mu.Unlock()
}
func (u *unclamped) Advice(string) time.Duration {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.max < policy.MinAdvice {
		return 0
	}
	return u.max
}

// maxOfAll advises the largest silence it saw, clamped: in bounds, but one
// frozen laptop sets everyone's timeout.
type maxOfAll struct{ unclamped }

func (m *maxOfAll) Advice(c string) time.Duration {
	if a := m.unclamped.Advice(c); a > 0 {
		return min(a, policy.MaxAdvice)
	}
	return 0
}

// meanExcess fits the exponential tail by its mean excess over the
// silence exceeded 20 times a day: a mean, which one enormous silence
// drags anywhere.
type meanExcess struct {
	s []time.Duration
}

func (m *meanExcess) Observe(_ string, _ time.Time, d time.Duration) { m.s = append(m.s, d) }
func (m *meanExcess) Advice(string) time.Duration {
	var total float64
	for _, d := range m.s {
		total += float64(d)
	}
	ws := make([]weighted, len(m.s))
	for i, d := range m.s {
		ws[i] = weighted{d, 1}
	}
	x0 := exceeded(ws, 20)
	var n, excess float64
	for _, d := range m.s {
		if d > x0 {
			n++
			excess += float64(d - x0)
		}
	}
	if n == 0 {
		return policy.MinAdvice
	}
	a := float64(x0) + excess/n*math.Log(n/(0.02*total/float64(24*time.Hour)))
	return min(max(time.Duration(a), policy.MinAdvice), policy.MaxAdvice)
}

// unclampedAdvice believes any advice: an hour makes detection take an
// hour, a millisecond makes it instant.
type unclampedAdvice struct {
	policy.Adaptive
	advice time.Duration
}

func (u *unclampedAdvice) Advise(d time.Duration) { u.advice = d }
func (u *unclampedAdvice) Timeouts() (time.Duration, time.Duration) {
	s, d := u.Adaptive.Timeouts()
	if u.advice > 0 {
		d = max(u.advice, s)
	}
	return s, d
}

func TestHarnessCatchesBrokenEstimators(t *testing.T) {
	cases := []struct {
		name, id string
		check    func(testing.TB)
	}{
		{"estimator without a cap", Q1, func(tb testing.TB) {
			CheckFleet(tb, func() Estimator { return &unclamped{} }, FleetPromise{Min: policy.MinAdvice, Max: policy.MaxAdvice, Select: Select{Only: []string{Q1}}})
		}},
		{"estimator that advises the largest silence", Q2, func(tb testing.TB) {
			p := fleetPromise()
			p.Select = Select{Only: []string{Q2}}
			CheckFleet(tb, func() Estimator { return &maxOfAll{} }, p)
		}},
		{"estimator that fits the tail by its mean excess", Q2, func(tb testing.TB) {
			p := fleetPromise()
			p.Select = Select{Only: []string{Q2}}
			CheckFleet(tb, func() Estimator { return &meanExcess{} }, p)
		}},
		{"detector that believes any advice", Q3, func(tb testing.TB) {
			CheckAdvised(tb, func(*rand.Rand) policy.Detector { return &unclampedAdvice{} },
				AdvisedPromise{Network: policy.NetworkBound{Heartbeat: 5 * time.Second, MaxRTT: 400 * time.Millisecond}})
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { expectCaught(t, c.id, c.check) })
	}
}
