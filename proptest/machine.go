package proptest

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/policy"
)

// CheckMachine checks a whole machine configuration (detector, interval,
// backoff, role and timings) against what it promises, on a simulated link
// with random loss, latency, disconnections, local pauses and peer
// failures: every per-step invariant (M1, M2, L1, L2, L3, E1, F1, B8, and
// P1, P2, B1 where the promise bounds the interval or backoff),
// completeness (C1), accuracy (A1, A2), pauses on a healthy link (L3), and
// agreement with the reference model of the declaration (M3).
//
// newConfig returns a fresh configuration for one connection, drawing any
// randomness from r; nil policies mean policy.Default's. The peer is a
// Machine of the other role that answers pings, pings by p.Peer's policy
// and never convicts.
//
// A failure reports the invariant, rapid's minimal counter-example and the
// flag that replays it.
func CheckMachine(t testing.TB, newConfig func(r *rand.Rand) fsm.Config, p MachinePromise) {
	t.Helper()
	if promiseFailed(t, p.validate()) {
		return
	}
	if newNil(t, "CheckMachine", newConfig == nil) {
		return
	}
	r := &machineRun{
		newConfig: newConfig,
		peer:      p.Peer,
		net:       p.Network,
		detection: p.Detection,
		noSuspect: p.NoSuspect,
		lifetime:  orDefault(p.Lifetime, DefaultLifetime),
		interval:  p.Interval,
		backoff:   p.Backoff,
	}
	if r.detection == 0 {
		r.detection = statedBound(t, withDefaults(newConfig(rand.New(rand.NewPCG(1, 2))), rand.New(rand.NewPCG(3, 4))).Detector, p.Network)
	}
	props := []property{
		{[]string{M1, M2, L1, L2, L3, E1, F1, D1, P1, P2, B1, B8}, r.safety},
		{[]string{A1, A2, F1}, r.accuracy},
		{[]string{L3, F1}, r.stall},
		{[]string{M3}, modelCheck(newConfig)},
	}
	if r.detection > 0 {
		props = append(props, property{[]string{C1}, r.completeness})
	}
	runAll(t, p.Select, props)
}

// withDefaults fills the policies a Config leaves nil as the Machine would,
// but from r instead of the operating system's entropy, so that a run
// replays from its seed.
func withDefaults(cfg fsm.Config, r *rand.Rand) fsm.Config {
	if cfg.Detector != nil && cfg.Interval != nil && (cfg.Backoff != nil || cfg.Role != fsm.Client) {
		return cfg
	}
	s := policy.DefaultSet(r)
	if cfg.Detector == nil {
		cfg.Detector = s.Detector
	}
	if cfg.Interval == nil {
		cfg.Interval = s.Interval
	}
	if cfg.Backoff == nil && cfg.Role == fsm.Client {
		cfg.Backoff = s.Backoff
	}
	return cfg
}

// CheckInterval checks an interval policy: pings never closer than
// p.Min (P1), the line never idle longer than p.Max while the connection is
// up (P2), and the Machine's per-step invariants with it (M1, L1, L2),
// under random loss, latency and disconnections.
//
// newInterval returns a fresh policy for one connection, drawing any
// randomness from r. It runs in a client Machine whose detector suspects
// after 3 x Max of silence (10 s for a listen-only policy) and declares
// dead after twice that, and whose MinPingInterval is p.Min (when set), so
// that the Machine's own floor does not hide a policy that pings too often.
func CheckInterval(t testing.TB, newInterval func(r *rand.Rand) policy.Interval, p IntervalPromise) {
	t.Helper()
	if promiseFailed(t, p.validate()) {
		return
	}
	if newNil(t, "CheckInterval", newInterval == nil) {
		return
	}
	suspect := 3 * p.Max
	if suspect == 0 {
		suspect = 10 * time.Second
	}
	floor := time.Duration(0) // the Machine's default
	if p.Min > 0 {
		floor = min(p.Min, fsm.DefaultMinPingInterval)
	}
	r := &machineRun{
		newConfig: func(r *rand.Rand) fsm.Config {
			return fsm.Config{
				Detector:        &policy.Fixed{SuspectAfter: suspect, DeadAfter: 2 * suspect},
				Interval:        newInterval(r),
				Backoff:         &policy.Constant{Delay: time.Second},
				MinPingInterval: floor,
			}
		},
		interval: &p,
	}
	runAll(t, p.Select, []property{
		{[]string{P1, P2, M1, L1, L2}, r.safety},
		{[]string{P1, P2}, r.accuracy},
	})
}
