package proptest

import (
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heartbeat-go/heartbeat/policy"
)

// expectCaught passes only if the harness fails check with invariant id,
// printing rapid's counter-example and the flag to replay it.
func expectCaught(t *testing.T, id string, check func(testing.TB)) {
	t.Helper()
	r := Verdict(t.Name(), check)
	if !r.Failed {
		t.Fatalf("the harness passed a broken policy; it should fail it with %s. Output:\n%s", id, r.Output)
	}
	if r.Invariant != id {
		t.Errorf("the harness failed the broken policy with %q, want %s:\n%s", r.Invariant, id, r.Output)
	}
	if !strings.Contains(r.Output, "To reproduce, specify -run=") || !strings.Contains(r.Output, "-rapid.") {
		t.Errorf("the failure does not say how to replay it:\n%s", r.Output)
	}
	if i := strings.Index(r.Output, "["+id+" "); i >= 0 {
		first, _, _ := strings.Cut(r.Output[i:], "\n")
		t.Logf("caught: %s", first)
	}
}

var healthy = policy.NetworkBound{Heartbeat: 10 * time.Second, MaxRTT: 4 * time.Second}

// neverDead suspects the peer but never declares it dead (within a day).
type neverDead struct{}

func (neverDead) Start(time.Time)                  {}
func (neverDead) Observe(time.Time, time.Duration) {}
func (neverDead) Timeouts() (time.Duration, time.Duration) {
	return 15 * time.Second, 24 * time.Hour
}

// firstLate expects every gap to be no longer than the last one: the
// first late frame convicts.
type firstLate struct {
	last time.Time
	gap  time.Duration
}

func (d *firstLate) Start(now time.Time) { d.last, d.gap = now, 15*time.Second }
func (d *firstLate) Observe(now time.Time, _ time.Duration) {
	d.gap = max(now.Sub(d.last), time.Millisecond)
	d.last = now
}
func (d *firstLate) Timeouts() (time.Duration, time.Duration) { return d.gap, d.gap + d.gap/100 }

// pastDeadline sets its timeout to mean − 3σ of the gaps it saw: on a
// jittery link that is zero or negative, a deadline already in the past.
type pastDeadline struct {
	last      time.Time
	n         float64
	sum, sum2 float64
}

func (d *pastDeadline) Start(now time.Time) { d.last = now }
func (d *pastDeadline) Observe(now time.Time, _ time.Duration) {
	g := float64(now.Sub(d.last))
	d.last = now
	d.n++
	d.sum += g
	d.sum2 += g * g
}
func (d *pastDeadline) Timeouts() (time.Duration, time.Duration) {
	if d.n < 2 {
		return 15 * time.Second, 25 * time.Second
	}
	mean := d.sum / d.n
	sd := math.Sqrt(max(d.sum2/d.n-mean*mean, 0))
	s := time.Duration(mean - 3*sd)
	return s, 2 * s
}

// overCap applies its ±50 % jitter after the cap.
type overCap struct{ r *rand.Rand }

func (b overCap) Next(r policy.Retry) (time.Duration, error) {
	v := min(time.Second<<min(r.Attempt-1, 20), 30*time.Second)
	return time.Duration(float64(v) * (0.5 + b.r.Float64())), nil
}

// ignoresLimit has a MaxAttempts it never enforces.
type ignoresLimit struct{ MaxAttempts int }

func (ignoresLimit) Next(policy.Retry) (time.Duration, error) { return time.Second, nil }

// neverResets counts its own calls instead of Retry.Attempt, so a stable
// connection does not bring the delays back down.
type neverResets struct {
	n int
	r *rand.Rand
}

func (b *neverResets) Next(policy.Retry) (time.Duration, error) {
	b.n++
	v := min(time.Second<<min(b.n-1, 20), 30*time.Second)
	return time.Duration(b.r.Float64() * float64(v)), nil
}

// wraps overflows its shift after attempt 40 and starts again from zero.
type wraps struct{}

func (wraps) Next(r policy.Retry) (time.Duration, error) {
	return min(time.Millisecond<<uint(r.Attempt%40), 30*time.Second), nil
}

// shared draws from a counter shared by every instance, not from its seed.
var sharedCounter struct {
	sync.Mutex
	n int
}

type shared struct{}

func (shared) Next(policy.Retry) (time.Duration, error) {
	sharedCounter.Lock()
	defer sharedCounter.Unlock()
	sharedCounter.n++
	return time.Duration(sharedCounter.n%1000) * time.Millisecond, nil
}

// storming asks for a ping whenever it is asked.
type storming struct{}

func (storming) NextPing(l policy.Link) time.Time { return l.Now }

// busy always wants its ping a nanosecond from now: it never pings and
// wakes the machine for nothing, forever.
type busy struct{}

func (busy) NextPing(l policy.Link) time.Time { return l.Now.Add(time.Nanosecond) }

func TestHarnessCatchesBrokenPolicies(t *testing.T) {
	cases := []struct {
		name, id string
		check    func(testing.TB)
	}{
		{"detector that never declares dead", C1, func(tb testing.TB) {
			CheckDetector(tb, func(*rand.Rand) policy.Detector { return neverDead{} },
				DetectorPromise{Network: healthy, Detection: 30 * time.Second, Select: Select{Only: []string{C1}}})
		}},
		{"detector that convicts on the first late answer", A1, func(tb testing.TB) {
			CheckDetector(tb, func(*rand.Rand) policy.Detector { return &firstLate{gap: 15 * time.Second} },
				DetectorPromise{Network: healthy, Detection: 30 * time.Second, Select: Select{Only: []string{A1}}})
		}},
		{"detector whose deadline can be in the past", D1, func(tb testing.TB) {
			CheckDetector(tb, func(*rand.Rand) policy.Detector { return &pastDeadline{} },
				DetectorPromise{Network: healthy, Detection: 30 * time.Second, Select: Select{Only: []string{D1}}})
		}},
		{"backoff that exceeds its cap", B1, func(tb testing.TB) {
			CheckBackoff(tb, func(r *rand.Rand) policy.Backoff { return overCap{r} },
				BackoffPromise{Max: 30 * time.Second, Select: Select{Only: []string{B1}}})
		}},
		{"backoff that ignores max attempts", B3, func(tb testing.TB) {
			CheckBackoff(tb, func(*rand.Rand) policy.Backoff { return ignoresLimit{MaxAttempts: 5} },
				BackoffPromise{MaxAttempts: 5, Select: Select{Only: []string{B3}}})
		}},
		{"backoff that never resets", B5, func(tb testing.TB) {
			CheckBackoff(tb, func(r *rand.Rand) policy.Backoff { return &neverResets{r: r} },
				BackoffPromise{Max: 30 * time.Second, Select: Select{Only: []string{B5}}})
		}},
		{"backoff whose envelope wraps to zero", B2, func(tb testing.TB) {
			CheckBackoff(tb, func(*rand.Rand) policy.Backoff { return wraps{} },
				BackoffPromise{Max: 30 * time.Second, Select: Select{Only: []string{B2}}})
		}},
		{"backoff that ignores its seed", B6, func(tb testing.TB) {
			CheckBackoff(tb, func(*rand.Rand) policy.Backoff { return shared{} },
				BackoffPromise{Select: Select{Only: []string{B6}}})
		}},
		{"backoff without jitter", B7, func(tb testing.TB) {
			CheckStorm(tb, func(*rand.Rand) policy.Backoff {
				return &policy.Exponential{Base: time.Second, Max: 30 * time.Second, Multiplier: 2}
			}, StormPromise{})
		}},
		{"interval that pings whenever asked", P1, func(tb testing.TB) {
			CheckInterval(tb, func(*rand.Rand) policy.Interval { return storming{} },
				IntervalPromise{Min: time.Second, Max: 10 * time.Second, Select: Select{Only: []string{P1}}})
		}},
		{"interval that wakes the machine for nothing", L2, func(tb testing.TB) {
			CheckInterval(tb, func(*rand.Rand) policy.Interval { return busy{} },
				IntervalPromise{Min: time.Second, Max: 10 * time.Second, Select: Select{Only: []string{L2}}})
		}},
		{"interval that lets the line idle too long", P2, func(tb testing.TB) {
			CheckInterval(tb, func(*rand.Rand) policy.Interval { return &policy.Idle{Every: 20 * time.Second} },
				IntervalPromise{Min: time.Second, Max: 10 * time.Second, Select: Select{Only: []string{P2}}})
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { expectCaught(t, c.id, c.check) })
	}
}

// The well-behaved counterparts pass the same checks, so the cases above
// fail for the broken behaviour, not for the way they are checked.
func TestHarnessPassesSoundPolicies(t *testing.T) {
	CheckDetector(t, func(*rand.Rand) policy.Detector {
		return &policy.Fixed{SuspectAfter: 15 * time.Second, DeadAfter: 25 * time.Second}
	}, DetectorPromise{Network: healthy, Detection: 30 * time.Second})
	CheckBackoff(t, func(r *rand.Rand) policy.Backoff {
		return &policy.Limit{Backoff: &policy.FullJitter{Cap: 30 * time.Second, Rand: r}, MaxAttempts: 5}
	}, BackoffPromise{Max: 30 * time.Second, MaxAttempts: 5})
	CheckInterval(t, func(*rand.Rand) policy.Interval { return &policy.Idle{Every: 10 * time.Second, Probe: time.Second} },
		IntervalPromise{Min: time.Second, Max: 10 * time.Second})
}
