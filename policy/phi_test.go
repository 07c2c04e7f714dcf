package policy_test

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/heartbeat-go/heartbeat/policy"
)

// y(T): the root of 0.070566·y³ + 1.5976·y = ln(10^T − 1), computed by
// bisection on Akka's forward formula to 1e-15.
var phiRoots = map[float64]float64{
	0.5: 0.47787997739735444,
	1:   1.282215344966695,
	2:   2.3227455354298687,
	3:   3.0589378194460943,
	8:   5.225986644093563,
	16:  7.119680927774246,
}

// TestPhiTimeoutsInvertPhi checks the closed-form inverse against the
// bisected roots, and that φ at the returned timeouts is the threshold.
func TestPhiTimeoutsInvertPhi(t *testing.T) {
	for level, y := range phiRoots {
		// Seeded window: 750 ms and 1250 ms → μ = 1 s, σ = 250 ms.
		d := &policy.PhiAccrual{Threshold: 16, SuspectThreshold: level, AcceptablePause: 3 * sec}
		s, _ := d.Timeouts()
		want := 4*sec + time.Duration(y*float64(250*ms))
		if !near(s, want) {
			t.Errorf("φ %v: suspect timeout %v, want %v", level, s, want)
		}
		if got := d.Phi(s); math.Abs(got-level) > 1e-6 {
			t.Errorf("φ at the suspect timeout %v is %v, want %v", s, got, level)
		}
	}
}

// TestPhiAkkaDefaults: Akka's cluster defaults on the seeded window give
// dead = 1 s + 3 s + 5.225986644·250 ms = 5.306496661 s.
func TestPhiAkkaDefaults(t *testing.T) {
	d := &policy.PhiAccrual{AcceptablePause: 3 * sec}
	s, dd := d.Timeouts()
	if want := 5306496661 * time.Nanosecond; !near(dd, want) || s != dd {
		t.Fatalf("timeouts (%v, %v), want both %v", s, dd, want)
	}
}

// TestPhiFormula checks Phi against Akka's formula computed by hand.
func TestPhiFormula(t *testing.T) {
	d := &policy.PhiAccrual{} // μ = 1 s, σ = 250 ms, no pause
	for _, tc := range []struct {
		silence time.Duration
		phi     float64
	}{
		{1500 * ms, 1.6428278854871123}, // y = 2
		{800 * ms, 0.10335433832693898}, // y = −0.8, the other branch
	} {
		if got := d.Phi(tc.silence); math.Abs(got-tc.phi) > 1e-12 {
			t.Errorf("φ(%v) = %v, want %v", tc.silence, got, tc.phi)
		}
	}
}

// TestPhiWindow fills a 4-sample ring and checks eviction and the exact
// mean and standard deviation against hand-computed values.
func TestPhiWindow(t *testing.T) {
	d := &policy.PhiAccrual{Window: 4, AcceptablePause: 3 * sec}
	now := t0
	d.Start(now)
	for _, g := range []time.Duration{1000 * ms, 1000 * ms, 2000 * ms} {
		now = now.Add(g)
		d.Observe(now, 0)
	}
	// The ring holds 1250, 1000, 1000, 2000 ms (750 was evicted):
	// μ = 1312.5 ms, σ² = 1 890 625 − 1312.5² = 167 968.75 ms².
	mean, std := 1312500*time.Microsecond, math.Sqrt(167968.75)*float64(ms)
	_, dd := d.Timeouts()
	want := mean + 3*sec + time.Duration(phiRoots[8]*std)
	if !near(dd, want) {
		t.Fatalf("dead timeout %v, want %v", dd, want)
	}
}

func TestPhiSkipsGapsPastThresholdAndBelowMinSample(t *testing.T) {
	d := &policy.PhiAccrual{MinSample: 500 * ms}
	d.Start(t0)
	_, before := d.Timeouts() // 1 s + 5.226·250 ms ≈ 2.3 s
	// A gap past the dead timeout (the peer was already judged gone) and a
	// gap shorter than MinSample leave the window alone.
	d.Observe(t0.Add(10*sec), 0)
	d.Observe(t0.Add(10*sec+100*ms), 0)
	if _, after := d.Timeouts(); after != before {
		t.Fatalf("dead timeout moved %v → %v", before, after)
	}
	d.Observe(t0.Add(11*sec+100*ms), 0) // a 1 s gap is added
	if _, after := d.Timeouts(); after == before {
		t.Fatal("a valid gap did not change the window")
	}
}

func TestPhiValidation(t *testing.T) {
	bad := []struct {
		det  policy.PhiAccrual
		want string
	}{
		{policy.PhiAccrual{Threshold: -1}, "threshold"},
		{policy.PhiAccrual{Threshold: math.NaN()}, "threshold"},
		{policy.PhiAccrual{Threshold: 500}, "threshold"},
		{policy.PhiAccrual{Threshold: 8, SuspectThreshold: 9}, "suspect threshold"},
		{policy.PhiAccrual{Window: 1}, "window"},
		{policy.PhiAccrual{Window: 1 << 20}, "window"},
		{policy.PhiAccrual{AcceptablePause: -sec}, "must not be negative"},
		{policy.PhiAccrual{MinStdDev: -sec}, "must not be negative"},
		{policy.PhiAccrual{MaxSample: sec}, "max sample"},
		{policy.PhiAccrual{MaxSample: time.Hour}, "max sample"},
	}
	for _, tc := range bad {
		err := tc.det.Validate()
		if !errors.Is(err, policy.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one about %q", tc.det, err, tc.want)
		}
		if s, d := tc.det.Timeouts(); s != 0 || d != 0 {
			t.Errorf("%+v: timeouts (%v, %v) from an invalid configuration", tc.det, s, d)
		}
	}
	if _, err := policy.NewPhiAccrual(0); err != nil {
		t.Fatal(err)
	}
}

func TestPhiDetectionBound(t *testing.T) {
	// Akka's defaults: least dead = 3 s + 5.226·100 ms − 1 µs; worst = max
	// sample 10 s + 3 s + 5.226·5 s.
	d := &policy.PhiAccrual{AcceptablePause: 3 * sec}
	nb := policy.NetworkBound{Heartbeat: sec, MaxRTT: 500 * ms}
	got, err := d.DetectionBound(nb)
	want := 500*ms + 13*sec + time.Duration(phiRoots[8]*float64(5*sec))
	if err != nil || !near(got, want) {
		t.Fatalf("bound %v, %v; want %v", got, err, want)
	}
	if _, err := d.DetectionBound(policy.NetworkBound{Heartbeat: sec, MaxRTT: 3 * sec}); !errors.Is(err, policy.ErrNoBound) {
		t.Fatalf("err %v, want ErrNoBound", err)
	}
}
