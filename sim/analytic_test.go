package sim

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestAnalyticDetection: on an idle, lossless, sub-millisecond link where
// the server pings every P and convicts after D of silence, a client that
// crashes at a uniform moment is detected D − U after the crash, U uniform
// on [0, P): the median is D − P/2. With Socket.IO-like numbers (P = 25 s,
// D = 45 s after the last pong) that is 32.5 s; with gorilla's chat
// example (P = 54 s, D = 60 s) 33 s.
func TestAnalyticDetection(t *testing.T) {
	lan, _ := ProfileByName("lan")
	lan.FailEvery = 0 // only the scheduled crashes below
	for _, c := range []struct {
		name         string
		period, dead time.Duration
	}{
		{"socketio", 25 * time.Second, 45 * time.Second},
		{"gorilla", 54 * time.Second, 60 * time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			const conns = 2000
			r := rand.New(rand.NewPCG(1, 2))
			cfg := Config{Profile: lan, Preset: serverPings(c.period, c.dead), Conns: conns, Duration: 10 * time.Minute, Seed: 9}
			for i := range conns {
				// After a warm-up, at a uniform moment in a window of whole
				// ping periods (every connection pings in about the same
				// phase, so a ragged window would favour some phases).
				at := 3*time.Minute + time.Duration(r.Int64N(int64(2*c.period)))
				cfg.Faults = append(cfg.Faults, Fault{At: at, Slot: i, Kind: CrashClient, Outage: 5 * time.Minute})
			}
			res, err := Run(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if res.Detection.Failures != conns || res.Detection.Undetected != 0 {
				t.Fatalf("%d failures measured, %d undetected; want %d, 0", res.Detection.Failures, res.Detection.Undetected, conns)
			}
			want := c.dead - c.period/2
			// The median of 2000 uniform draws is within ±3.5 % of the
			// range of its true value with overwhelming probability (4σ).
			tol := c.period * 35 / 1000
			if d := res.Detection.Time.P50 - want; d < -tol || d > tol {
				t.Errorf("detection p50 %v, analytic %v (tolerance %v)", res.Detection.Time.P50, want, tol)
			}
			if lo, hi := c.dead-c.period, c.dead+10*time.Millisecond; res.Detection.Time.Max > hi || res.Detection.Time.P50 < lo {
				t.Errorf("detection p50 %v max %v outside the analytic range [%v, %v]", res.Detection.Time.P50, res.Detection.Time.Max, lo, hi)
			}
			t.Logf("detection p50 %v (analytic %v), max %v, over %d crashes", res.Detection.Time.P50, want, res.Detection.Time.Max, res.Detection.Failures)
			if res.False.Deads != [2]int64{} {
				t.Errorf("false deads %v on an idle lossless link", res.False.Deads)
			}
		})
	}
}
