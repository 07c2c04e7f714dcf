package policy_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/heartbeat-go/heartbeat/policy"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

const (
	ms  = time.Millisecond
	sec = time.Second
)

// near reports whether two durations agree to a microsecond (the estimators
// compute in float64 nanoseconds).
func near(a, b time.Duration) bool { return (a - b).Abs() <= time.Microsecond }

// evidence is one Observe: the gap since the previous evidence and the rtt.
type evidence struct{ gap, rtt time.Duration }

// TestAdaptiveFormula checks the estimator against values computed by hand
// from the documented formulas (γ = 0.1, β = 1, φ = 4, margins clamped to
// [250 ms, Interval], dead = suspect + Probes·Probe + rto).
func TestAdaptiveFormula(t *testing.T) {
	cases := []struct {
		name          string
		det           policy.Adaptive
		seq           []evidence
		suspect, dead time.Duration
	}{
		{
			// No sample: α = Initial = 1 s, rto = α.
			name: "initial", seq: nil,
			suspect: 6 * sec, dead: 6*sec + 2*sec + sec,
		},
		{
			// L = 100 ms: delay 100, dev 50 → α = 100 + 4·50 = 300 ms.
			name: "first sample", seq: []evidence{{5100 * ms, 0}},
			suspect: 5300 * ms, dead: 5300*ms + 2*sec + 300*ms,
		},
		{
			// L = 300 ms: err 200 → delay 120, dev 50 + 0.1·(200 − 50) = 65
			// → α = 120 + 260 = 380 ms. The 1 s gap is data (< Interval/2).
			name: "second sample, data ignored", seq: []evidence{{5100 * ms, 0}, {5300 * ms, 0}, {sec, 0}},
			suspect: 5380 * ms, dead: 5380*ms + 2*sec + 380*ms,
		},
		{
			// rtt 80 ms: srtt 80, rttvar 40 → 80 + 160 = 240, clamped to
			// 250 ms. An early heartbeat (gap 4 s ≥ 2.5 s) is lateness 0:
			// delay 0, dev 0 → α clamped to 250 ms.
			name: "rtt floor", seq: []evidence{{4 * sec, 80 * ms}},
			suspect: 5250 * ms, dead: 5250*ms + 2*sec + 250*ms,
		},
		{
			// rtt 400 ms: 400 + 4·200 = 1.2 s; lateness 400: α = 1.2 s.
			name: "rtt margin", seq: []evidence{{5400 * ms, 400 * ms}},
			suspect: 6200 * ms, dead: 6200*ms + 2*sec + 1200*ms,
		},
		{
			// A 30 s gap is capped at MaxMargin = 2 s: delay 2, dev 1 →
			// 2 + 4 = 6 s, clamped to 2 s.
			name: "max clamp", det: policy.Adaptive{MaxMargin: 2 * sec}, seq: []evidence{{30 * sec, 0}},
			suspect: 7 * sec, dead: 7*sec + 2*sec + 2*sec,
		},
		{
			// Interval 20 s, probe 2 s, 3 probes, β = 2, φ = 2, γ = 0.5:
			// L = 1 s: delay 1, dev 0.5 → α = 2 + 1 = 3 s; L = 0: err −1 →
			// delay 0.5, dev 0.5 + 0.5·(1 − 0.5) = 0.75 → α = 1 + 1.5 = 2.5 s.
			name:    "custom weights",
			det:     policy.Adaptive{Interval: 20 * sec, Probe: 2 * sec, Probes: 3, Beta: 2, Phi: 2, Gain: 0.5},
			seq:     []evidence{{21 * sec, 0}, {20 * sec, 0}},
			suspect: 22500 * ms, dead: 22500*ms + 3*2*sec + 2500*ms,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.det
			now := t0
			d.Start(now)
			for _, e := range tc.seq {
				now = now.Add(e.gap)
				d.Observe(now, e.rtt)
			}
			s, dd := d.Timeouts()
			if !near(s, tc.suspect) || !near(dd, tc.dead) {
				t.Fatalf("timeouts (%v, %v), want (%v, %v); estimate %+v", s, dd, tc.suspect, tc.dead, d.Estimate())
			}
		})
	}
}

func TestAdaptiveKeepsEstimatesAcrossConnections(t *testing.T) {
	var d policy.Adaptive
	d.Start(t0)
	d.Observe(t0.Add(5400*ms), 400*ms)
	before := d.Estimate()
	d.Start(t0.Add(time.Hour)) // the gap across the reconnect is not a sample
	d.Observe(t0.Add(time.Hour+sec), 0)
	if after := d.Estimate(); after != before {
		t.Fatalf("estimate changed across a reconnect: %+v → %+v", before, after)
	}
}

func TestAdaptiveValidation(t *testing.T) {
	bad := []struct {
		det  policy.Adaptive
		want string
	}{
		{policy.Adaptive{Interval: -sec}, "heartbeat interval"},
		{policy.Adaptive{Interval: 50 * ms}, "heartbeat interval"},
		{policy.Adaptive{Interval: 5 * sec, Probe: 5 * sec}, "shorter than the heartbeat interval"},
		{policy.Adaptive{Probe: 10 * ms}, "probe interval"},
		{policy.Adaptive{Probes: -1}, "probes"},
		{policy.Adaptive{Gain: 1.5}, "gain"},
		{policy.Adaptive{Gain: -0.1}, "gain"},
		{policy.Adaptive{Beta: -1}, "weights"},
		{policy.Adaptive{MinMargin: 6 * sec}, "margins"},
		{policy.Adaptive{MaxMargin: -sec}, "margins"},
		{policy.Adaptive{Initial: -sec}, "initial margin"},
	}
	for _, tc := range bad {
		err := tc.det.Validate()
		var ce *policy.ConfigError
		if !errors.As(err, &ce) || !errors.Is(err, policy.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want a ConfigError about %q", tc.det, err, tc.want)
			continue
		}
		// An invalid detector hands the Machine timeouts it rejects.
		if s, d := tc.det.Timeouts(); s != 0 || d != 0 {
			t.Errorf("%+v: timeouts (%v, %v) from an invalid configuration", tc.det, s, d)
		}
	}
	if _, err := policy.NewAdaptive(0, 0); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	// The probe default shrinks to half a short interval.
	if err := (&policy.Adaptive{Interval: sec}).Validate(); err != nil {
		t.Fatalf("1 s interval: %v", err)
	}
}

func TestAdaptiveDetectionBound(t *testing.T) {
	var d policy.Adaptive // 5 s, 2 probes of 1 s, margins in [250 ms, 5 s]
	got, err := d.DetectionBound(policy.NetworkBound{Heartbeat: 5 * sec, MaxRTT: sec})
	if err != nil || got != sec+5*sec+2*sec+2*5*sec {
		t.Fatalf("bound %v, %v; want 18s", got, err)
	}
	// Least dead timeout 5 + 2 + 0.5 = 7.5 s: a 2.5 s round trip leaves no room.
	if _, err := d.DetectionBound(policy.NetworkBound{Heartbeat: 5 * sec, MaxRTT: 2500 * ms}); !errors.Is(err, policy.ErrNoBound) {
		t.Fatalf("err %v, want ErrNoBound", err)
	}
	if _, err := d.DetectionBound(policy.NetworkBound{}); !errors.Is(err, policy.ErrNoBound) {
		t.Fatalf("zero bound: err %v", err)
	}
}
