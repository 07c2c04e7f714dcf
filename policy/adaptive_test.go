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
// from the documented formulas (γ = 0.1, β = 1, φ = 4, Retransmit 200 ms,
// margins clamped to [250 ms, Interval], rto = clamp(r + 200 ms), α =
// max(lateness margin, rto), tol = min(14·w, w + 5 s, 30 s) with w
// the larger of the worst lateness and the prior, dead = Interval +
// max(α + (Probes−1)·Probe + rto, tol)). Most cases set Warmup 1, which
// clears the prior at the first sample, to look at the estimator alone.
func TestAdaptiveFormula(t *testing.T) {
	cases := []struct {
		name          string
		det           policy.Adaptive
		seq           []evidence
		suspect, dead time.Duration
	}{
		{
			// No sample: α = rto = Initial = 1 s, nothing remembered.
			name: "initial", seq: nil,
			suspect: 6 * sec, dead: 5*sec + sec + sec,
		},
		{
			// L = 100 ms: delay 100, dev 50 → r = 100 + 4·50 = 300 ms
			// (no answered ping: the lateness stands in), rto = 500 ms,
			// α = max(300, 500) = 500 ms; worst 100 ms → tol = 1.4 s.
			name: "first sample", det: policy.Adaptive{Tuning: policy.AdaptiveTuning{Warmup: 1}}, seq: []evidence{{5100 * ms, 0}},
			suspect: 5500 * ms, dead: 5*sec + 1400*ms,
		},
		{
			// The same with the default prior: it starts at Initial (1 s)
			// and shrinks by 1/20 per sample: 0.95 s → tol = min(13.3,
			// 0.95 + 5, 30) = 5.95 s.
			name: "prior", seq: []evidence{{5100 * ms, 0}},
			suspect: 5500 * ms, dead: 5*sec + 5950*ms,
		},
		{
			// L = 300 ms: err 200 → delay 120, dev 50 + 0.1·(200 − 50) = 65
			// → r = 120 + 260 = 380, rto = 580 ms = α. The 1 s gap is data
			// (< Interval/2). worst = max(300, 100·(1 − 1/720)) = 300 ms
			// → tol = 4.2 s.
			name: "second sample, data ignored", det: policy.Adaptive{Tuning: policy.AdaptiveTuning{Warmup: 1}},
			seq:     []evidence{{5100 * ms, 0}, {5300 * ms, 0}, {sec, 0}},
			suspect: 5580 * ms, dead: 5*sec + 4200*ms,
		},
		{
			// rtt 80 ms: srtt 80, rttvar 40 → r = 240, rto = 440 ms. An
			// early heartbeat (gap 4 s ≥ 2.5 s) is lateness 0: α = max(0,
			// 440) = 440 ms; nothing late remembered → dead = 5 + 0.88 s.
			name: "rtt margin", det: policy.Adaptive{Tuning: policy.AdaptiveTuning{Warmup: 1}}, seq: []evidence{{4 * sec, 80 * ms}},
			suspect: 5440 * ms, dead: 5880 * ms,
		},
		{
			// rtt 400 ms: r = 400 + 4·200 = 1.2 s, rto = 1.4 s; lateness
			// 400 ms: 1.2 s, so α = 1.4 s. worst 400 ms → tol = min(5.6,
			// 5.4, 30) = 5.4 s > α + rto = 2.8 s.
			name: "slow link", det: policy.Adaptive{Tuning: policy.AdaptiveTuning{Warmup: 1}}, seq: []evidence{{5400 * ms, 400 * ms}},
			suspect: 6400 * ms, dead: 5*sec + 5400*ms,
		},
		{
			// A 30 s gap: the estimator's sample is capped at MaxMargin =
			// 2 s (delay 2, dev 1 → r = 6 s, rto = α = 2 s), the worst at
			// MaxTolerance = 10 s → tol = min(140, 15, 10) = 10 s.
			name: "max clamp", det: policy.Adaptive{MaxMargin: 2 * sec, MaxTolerance: 10 * sec, Tuning: policy.AdaptiveTuning{Warmup: 1}}, seq: []evidence{{30 * sec, 0}},
			suspect: 7 * sec, dead: 15 * sec,
		},
		{
			// Slack 1 s: L = 2 s, the estimator's sample capped at
			// MaxMargin = 1 s (delay 1, dev 0.5 → r = 3 s, rto = α = 1 s);
			// worst 2 s → tol = min(28, 2 + 1, 30) = 3 s > α + rto = 2 s.
			name: "slack", det: policy.Adaptive{MaxMargin: sec, Tuning: policy.AdaptiveTuning{Slack: sec, Warmup: 1}}, seq: []evidence{{7 * sec, 0}},
			suspect: 6 * sec, dead: 8 * sec,
		},
		{
			// Memory 2 halves the worst per sample; Headroom 20. L = 400
			// ms: delay 400, dev 200; L = 0: err −400 → delay 360, dev 200
			// + 0.1·(400 − 200) = 220 → r = 360 + 880 = 1240 ms, rto = α =
			// 1440 ms. worst = max(0, 400·0.5) = 200 ms → tol = min(4,
			// 5.2, 30) = 4 s > 2.88 s.
			name: "memory decays", det: policy.Adaptive{Tuning: policy.AdaptiveTuning{Memory: 2, Headroom: 20, Warmup: 1}},
			seq:     []evidence{{5400 * ms, 0}, {5 * sec, 0}},
			suspect: 6440 * ms, dead: 9 * sec,
		},
		{
			// Interval 20 s, probe 2 s, 3 probes, β = 2, φ = 2, γ = 0.5,
			// Headroom 4: L = 1 s: delay 1, dev 0.5; L = 0: err −1 → delay
			// 0.5, dev 0.5 + 0.5·(1 − 0.5) = 0.75 → r = 1 + 1.5 = 2.5 s,
			// rto = α = 2.7 s; worst = 1·(1 − 1/720) s → tol ≈ 3.994 s <
			// α + 2·2 + rto = 9.4 s.
			name:    "custom weights",
			det:     policy.Adaptive{Interval: 20 * sec, Probe: 2 * sec, Probes: 3, Tuning: policy.AdaptiveTuning{Beta: 2, Phi: 2, Gain: 0.5, Headroom: 4, Warmup: 1}},
			seq:     []evidence{{21 * sec, 0}, {20 * sec, 0}},
			suspect: 22700 * ms, dead: 29400 * ms,
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
		{policy.Adaptive{Tuning: policy.AdaptiveTuning{Gain: 1.5}}, "gain"},
		{policy.Adaptive{Tuning: policy.AdaptiveTuning{Gain: -0.1}}, "gain"},
		{policy.Adaptive{Tuning: policy.AdaptiveTuning{Beta: -1}}, "weights"},
		{policy.Adaptive{MinMargin: 6 * sec}, "margins"},
		{policy.Adaptive{MaxMargin: -sec}, "margins"},
		{policy.Adaptive{Tuning: policy.AdaptiveTuning{Initial: -sec}}, "initial margin"},
		{policy.Adaptive{Tuning: policy.AdaptiveTuning{Retransmit: -sec}}, "retransmit"},
		{policy.Adaptive{MaxTolerance: -sec}, "max tolerance"},
		{policy.Adaptive{Tuning: policy.AdaptiveTuning{Headroom: -1}}, "headroom"},
		{policy.Adaptive{Tuning: policy.AdaptiveTuning{Memory: 0.5}}, "memory"},
		{policy.Adaptive{Tuning: policy.AdaptiveTuning{Warmup: 0.5}}, "warmup"},
		{policy.Adaptive{Tuning: policy.AdaptiveTuning{Slack: -sec}}, "slack"},
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
	var d policy.Adaptive // 5 s, 1 probe, margins in [250 ms, 5 s], tolerance up to 30 s
	// 0.4 + 5 + max(2·5 + 0, 30) = 35.4 s.
	got, err := d.DetectionBound(policy.NetworkBound{Heartbeat: 5 * sec, MaxRTT: 400 * ms})
	if err != nil || got != 400*ms+5*sec+30*sec {
		t.Fatalf("bound %v, %v; want 35.4s", got, err)
	}
	// Least dead timeout 5 + 0 + 0.5 = 5.5 s: a 500 ms round trip leaves no room.
	if _, err := d.DetectionBound(policy.NetworkBound{Heartbeat: 5 * sec, MaxRTT: 500 * ms}); !errors.Is(err, policy.ErrNoBound) {
		t.Fatalf("err %v, want ErrNoBound", err)
	}
	if _, err := d.DetectionBound(policy.NetworkBound{}); !errors.Is(err, policy.ErrNoBound) {
		t.Fatalf("zero bound: err %v", err)
	}
}
