package proptest

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/heartbeat-go/heartbeat/policy"
)

// Estimator is a fleet estimator, such as policy.Fleet: it observes live
// silences per class and advises a dead timeout.
type Estimator interface {
	Observe(class string, now time.Time, silence time.Duration)
	Advice(class string) time.Duration
}

// FleetPromise is what a fleet estimator promises.
type FleetPromise struct {
	Select
	// Min and Max bound the advice (Q1): it is 0 (none) or in [Min, Max].
	Min, Max time.Duration
	// TailRate and Factor state the robustness (Q2): outliers rarer than
	// ε < TailRate per connection-day (the connection time being the sum
	// of the silences) never raise the advice above Factor times the
	// silence the ordinary ones exceed TailRate − ε times per
	// connection-day, give or take Resolution (a fraction; the
	// estimator's bucket width), nor above max(Min, that). Factor zero
	// skips Q2.
	TailRate, Factor, Resolution float64
}

func (p FleetPromise) validate() error {
	switch {
	case p.Min < 0 || p.Max < p.Min:
		return promiseErr("FleetPromise.Max", "need 0 <= Min %v <= Max %v", p.Min, p.Max)
	case p.Factor < 0 || math.IsNaN(p.Factor) || math.IsInf(p.Factor, 0):
		return promiseErr("FleetPromise.Factor", "%v must be finite and not negative", p.Factor)
	case p.Factor > 0 && !(p.TailRate > 0 && p.TailRate < 1e6):
		return promiseErr("FleetPromise.TailRate", "%v must be positive (and sensible) when Factor is set", p.TailRate)
	case !(p.Resolution >= 0 && p.Resolution < 1):
		return promiseErr("FleetPromise.Resolution", "%v must be in [0, 1)", p.Resolution)
	}
	return p.Select.validate("FleetPromise.Select")
}

// CheckFleet checks a fleet estimator against what it promises: advice
// always within bounds, whatever it observed and whenever (Q1), and a
// minority of enormous silences cannot push it past the stated quantile
// (Q2). newFleet returns a fresh estimator for each case.
func CheckFleet(t testing.TB, newFleet func() Estimator, p FleetPromise) {
	t.Helper()
	if promiseFailed(t, p.validate()) {
		return
	}
	if newNil(t, "CheckFleet", newFleet == nil) {
		return
	}
	c := fleetCheck{newF: newFleet, p: p}
	props := []property{{[]string{Q1}, c.bounds}}
	if p.Factor > 0 {
		props = append(props, property{[]string{Q2}, c.outliers})
	}
	runAll(t, p.Select, props)
}

type fleetCheck struct {
	newF func() Estimator
	p    FleetPromise
}

func fleetFail(t *rapid.T, id, format string, args ...any) {
	t.Fatalf("[%s %s] %s", id, invariantName(id), fmt.Sprintf(format, args...))
}

var fleetClasses = []string{"", "ios", "android", "web", "wifi", "cell", "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n"}

// bounds: any silences (negative, zero, days long), in bulk or alone, at
// any times (backwards, years apart), in any of many classes.
func (c fleetCheck) bounds(t *rapid.T, _ Select) {
	f := c.newF()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	steps := rapid.IntRange(1, 40).Draw(t, "steps")
	for i := range steps {
		class := rapid.SampledFrom(fleetClasses).Draw(t, "class")
		now := t0.Add(time.Duration(rapid.Int64Range(-1000, 100000).Draw(t, "hour")) * time.Hour)
		var silence time.Duration
		switch rapid.IntRange(0, 3).Draw(t, "kind") {
		case 0:
			silence = drawDur(t, "silence", 0, time.Minute)
		case 1:
			silence = drawDur(t, "long silence", time.Minute, 1000*time.Hour)
		case 2:
			silence = -drawDur(t, "negative silence", 0, time.Hour)
		default:
			silence = time.Duration(rapid.Int64Range(math.MaxInt64/2, math.MaxInt64).Draw(t, "huge silence"))
		}
		n := rapid.IntRange(1, 5000).Draw(t, "times")
		for range n {
			f.Observe(class, now, silence)
		}
		for _, k := range fleetClasses {
			if a := f.Advice(k); a != 0 && (a < c.p.Min || a > c.p.Max) {
				fleetFail(t, Q1, "step %d: after %d silences of %v in class %q at %v, class %q is advised %v: outside [%v, %v] and not 0",
					i+1, n, silence, class, now, k, a, c.p.Min, c.p.Max)
			}
		}
	}
}

// weighted is a silence observed n times.
type weighted struct {
	d time.Duration
	n int
}

// exceeded returns the least x with weight(silences > x) ≤ rate per day of
// their total duration: the exact quantile Q2 is stated in.
func exceeded(s []weighted, rate float64) time.Duration {
	var total float64
	for _, w := range s {
		total += float64(w.n) * float64(w.d)
	}
	allowed := rate * total / float64(24*time.Hour)
	s = slices.SortedFunc(slices.Values(s), func(a, b weighted) int { return cmp.Compare(b.d, a.d) })
	var above float64
	x := time.Duration(0)
	for i, w := range s {
		if i > 0 && w.d == s[i-1].d {
			above += float64(w.n)
			continue
		}
		if above > allowed {
			return x
		}
		x = w.d
		above += float64(w.n)
	}
	if above > allowed {
		return x
	}
	return 0
}

// outliers: ordinary silences (a heartbeat's body and a tail of stalls),
// then a few enormous ones, rarer than ε per connection-day.
func (c fleetCheck) outliers(t *rapid.T, _ Select) {
	f := c.newF()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	body := drawDur(t, "heartbeat", 2*time.Second, 30*time.Second)
	good := []weighted{{body, rapid.IntRange(20000, 200000).Draw(t, "heartbeats")}}
	for range rapid.IntRange(0, 30).Draw(t, "stall lengths") {
		good = append(good, weighted{drawDur(t, "stalled silence", body, 20*body), rapid.IntRange(1, 50).Draw(t, "stalls")})
	}
	var total float64
	for _, w := range good {
		total += float64(w.n) * float64(w.d)
	}
	eps := c.p.TailRate * float64(rapid.IntRange(1, 90).Draw(t, "ε in % of the tail rate")) / 100
	k := int(eps * total / float64(24*time.Hour))
	order := make([]time.Duration, 0, 64)
	for _, w := range good {
		for range w.n {
			f.Observe("", t0, w.d)
		}
	}
	for range k {
		d := drawDur(t, "outlier", time.Minute, 100*time.Hour)
		order = append(order, d)
		f.Observe("", t0, d)
	}
	x := exceeded(good, c.p.TailRate-eps)
	bound := min(max(c.p.Min, time.Duration(c.p.Factor*(1+c.p.Resolution)*float64(x))), c.p.Max)
	if a := f.Advice(""); a > bound+time.Microsecond {
		fleetFail(t, Q2, "%d outliers (%v…) among %.1f connection-days of ordinary silences (ε = %.3g a day < %.3g): advice %v exceeds %.3g × %v (the ordinary silences exceeded %.3g times a day) = %v",
			k, firstOf(order), total/float64(24*time.Hour), eps, c.p.TailRate, a, c.p.Factor*(1+c.p.Resolution), x, c.p.TailRate-eps, bound)
	}
}

func firstOf(d []time.Duration) any {
	if len(d) == 0 {
		return "none"
	}
	return d[0]
}

// AdvisedPromise is what a detector that takes advice promises under any
// advice (Q3).
type AdvisedPromise struct {
	Select
	// Network is the bound of the detector's DetectionBound.
	Network policy.NetworkBound
}

// CheckAdvised checks a detector that takes a fleet's advice
// (policy.Advisable) and states its worst case (policy.Bounded): whatever
// advice it gets, at any moment of whatever history, its dead timeout
// plus Network.MaxRTT stays within its DetectionBound(Network), and advice
// never shortens its dead timeout below what it would be without (Q3).
func CheckAdvised(t testing.TB, newDetector func(r *rand.Rand) policy.Detector, p AdvisedPromise) {
	t.Helper()
	if promiseFailed(t, validateNetwork("AdvisedPromise.Network", p.Network, true)) || promiseFailed(t, p.Select.validate("AdvisedPromise.Select")) {
		return
	}
	if newNil(t, "CheckAdvised", newDetector == nil) {
		return
	}
	runAll(t, p.Select, []property{{[]string{Q3}, func(t *rapid.T, _ Select) { advisedBound(t, newDetector, p) }}})
}

func advisedBound(t *rapid.T, newDetector func(r *rand.Rand) policy.Detector, p AdvisedPromise) {
	seed := rapid.Uint64().Draw(t, "seed")
	d, twin := newDetector(rand.New(rand.NewPCG(seed, 1))), newDetector(rand.New(rand.NewPCG(seed, 1)))
	a, ok := d.(policy.Advisable)
	b, ok2 := d.(policy.Bounded)
	if !ok || !ok2 {
		fleetFail(t, V1, "the detector %T does not take advice (policy.Advisable) or states no bound (policy.Bounded)", d)
	}
	bound, err := b.DetectionBound(p.Network)
	if err != nil {
		fleetFail(t, V1, "the detector states no bound under %+v: %v", p.Network, err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	d.Start(now)
	twin.Start(now)
	for i := range rapid.IntRange(1, 60).Draw(t, "steps") {
		if rapid.IntRange(0, 2).Draw(t, "advise?") == 0 {
			var adv time.Duration
			switch rapid.IntRange(0, 2).Draw(t, "advice kind") {
			case 0:
				adv = drawDur(t, "advice", 0, 2*time.Minute)
			case 1:
				adv = drawDur(t, "long advice", 2*time.Minute, 48*time.Hour)
			default:
				adv = -drawDur(t, "negative advice", 0, time.Hour)
			}
			a.Advise(adv)
			_, dead := d.Timeouts()
			_, plain := twin.Timeouts()
			if dead+p.Network.MaxRTT > bound {
				fleetFail(t, Q3, "step %d: advice %v makes the dead timeout %v: with the round trip %v it exceeds the detection bound %v", i+1, adv, dead, p.Network.MaxRTT, bound)
			}
			if dead < plain {
				fleetFail(t, Q3, "step %d: advice %v shortens the dead timeout from %v to %v", i+1, adv, plain, dead)
			}
			continue
		}
		now = now.Add(drawDur(t, "gap", 0, 3*p.Network.Gap()))
		rtt := drawDur(t, "rtt", 0, p.Network.MaxRTT)
		d.Observe(now, rtt)
		twin.Observe(now, rtt)
		_, dead := d.Timeouts()
		if dead+p.Network.MaxRTT > bound {
			fleetFail(t, Q3, "step %d: after a silence, the advised dead timeout %v with the round trip %v exceeds the detection bound %v", i+1, dead, p.Network.MaxRTT, bound)
		}
	}
}
