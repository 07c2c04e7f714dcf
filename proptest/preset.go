package proptest

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/policy"
)

// PresetPromise is what CheckPreset holds a preset to. Interval and
// backoff bounds are derived from the preset's own policies (see
// DeriveInterval and DeriveBackoff).
type PresetPromise struct {
	Select
	// Network bounds a healthy link. A zero Heartbeat means the preset's
	// own cadence, p.Pings.Heartbeat().
	Network policy.NetworkBound
	// NoSuspect promises that neither side suspects a healthy peer (A2).
	NoSuspect bool
	// Storm sets the storm-spreading check of the client's backoff (B7).
	Storm StormPromise
}

// CheckPreset runs every check that applies to both sides of a preset:
// CheckMachine for the client (its peer pinging as the preset's server
// does) and for the server (its peer pinging as the client does),
// CheckDetector and CheckInterval for each side's policies, and
// CheckBackoff for the client's backoff.
func CheckPreset(t testing.TB, p policy.Preset, pp PresetPromise) {
	t.Helper()
	nb := pp.Network
	if nb.Heartbeat == 0 {
		nb.Heartbeat = p.Pings.Heartbeat()
	}
	seeded := func(side func(*rand.Rand) policy.Set) policy.Set {
		return side(rand.New(rand.NewPCG(1, 2)))
	}
	client, server := seeded(p.Client), seeded(p.Server)
	sides := []struct {
		name string
		role fsm.Role
		own  func(*rand.Rand) policy.Set
		peer func(*rand.Rand) policy.Set
		set  policy.Set
	}{
		{"client", fsm.Client, p.Client, p.Server, client},
		{"server", fsm.Server, p.Server, p.Client, server},
	}
	for _, s := range sides {
		own, peer := s.own, s.peer
		role := s.role
		mp := MachinePromise{
			Select:    pp.Select,
			Network:   nb,
			NoSuspect: pp.NoSuspect,
			Peer:      func(r *rand.Rand) policy.Interval { return peer(r).Interval },
		}
		if ip, ok := DeriveInterval(s.set.Interval); ok {
			mp.Interval = &ip
		}
		if role == fsm.Client {
			if bp, ok := DeriveBackoff(s.set.Backoff); ok {
				mp.Backoff = &bp
			}
		}
		newConfig := func(r *rand.Rand) fsm.Config {
			set := own(r)
			return fsm.Config{Role: role, Detector: set.Detector, Interval: set.Interval, Backoff: set.Backoff}
		}
		sub(t, s.name+"/machine", func(t testing.TB) { CheckMachine(t, newConfig, mp) })
		if nb.Heartbeat > 0 && selectsAny(pp.Select, D1, A1, A2, C1) {
			dp := DetectorPromise{Select: pp.Select, Network: nb, NoSuspect: pp.NoSuspect}
			sub(t, s.name+"/detector", func(t testing.TB) {
				CheckDetector(t, func(r *rand.Rand) policy.Detector { return own(r).Detector }, dp)
			})
		}
		if ip, ok := DeriveInterval(s.set.Interval); ok && selectsAny(pp.Select, P1, P2) {
			ip.Select = pp.Select
			sub(t, s.name+"/interval", func(t testing.TB) {
				CheckInterval(t, func(r *rand.Rand) policy.Interval { return own(r).Interval }, ip)
			})
		}
	}
	if client.Backoff != nil && selectsAny(pp.Select, B1, B2, B3, B4, B5, B6, B7) {
		bp, _ := DeriveBackoff(client.Backoff)
		bp.First = 0 // a preset may draw its parameters per connection: estimate it over many
		bp.Select = pp.Select
		bp.Storm = pp.Storm
		sub(t, "client/backoff", func(t testing.TB) {
			CheckBackoff(t, func(r *rand.Rand) policy.Backoff { return p.Client(r).Backoff }, bp)
		})
	}
}

func selectsAny(s Select, ids ...string) bool { return slices.ContainsFunc(ids, s.on) }

// sub runs f as a subtest of a *testing.T, or directly on any other TB.
func sub(t testing.TB, name string, f func(testing.TB)) {
	t.Helper()
	if tt, ok := t.(*testing.T); ok {
		tt.Run(name, func(t *testing.T) { f(t) })
		return
	}
	f(t)
}

// DeriveInterval returns the bounds an interval policy of package policy
// promises by construction: Idle and AdaptiveInterval ping within [probe,
// idle gap]; Every within its period (or its first delay); Listen and
// Never promise no liveness (Max 0). ok is false for other types.
func DeriveInterval(iv policy.Interval) (p IntervalPromise, ok bool) {
	or := func(v, def time.Duration) time.Duration {
		if v == 0 {
			return def
		}
		return v
	}
	switch v := iv.(type) {
	case *policy.Idle:
		return IntervalPromise{Min: or(v.Probe, v.Every), Max: v.Every}, true
	case *policy.Every:
		return IntervalPromise{Min: v.Period, Max: max(v.Period, v.First)}, true
	case *policy.AdaptiveInterval:
		lo := max(or(v.Min, policy.DefaultIntervalMin), policy.MinPingGap)
		return IntervalPromise{Min: lo, Max: max(or(v.Max, policy.DefaultIntervalMax), lo)}, true
	case *policy.Listen:
		return IntervalPromise{Min: max(or(v.Probe, policy.DefaultIntervalMin), policy.MinPingGap)}, true
	case policy.Never, *policy.Never:
		return IntervalPromise{}, true
	}
	return IntervalPromise{}, false
}

// DeriveBackoff returns the bounds a backoff of package policy promises
// by construction. ok is false for other types (the zero promise is then
// still a fair start: no delay bounds, no limits).
func DeriveBackoff(b policy.Backoff) (p BackoffPromise, ok bool) {
	or := func(v, def time.Duration) time.Duration {
		if v == 0 {
			return def
		}
		return v
	}
	switch v := b.(type) {
	case *policy.Constant:
		return BackoffPromise{Min: v.Delay, Max: v.Delay, First: v.Delay, MaxAttempts: v.MaxAttempts}, true
	case *policy.Exponential:
		base, capd := or(v.Base, policy.DefaultBackoffBase), or(v.Max, policy.DefaultBackoffCap)
		first := min(time.Duration(float64(base)*(1+v.Jitter)), capd)
		return BackoffPromise{Max: capd, First: first}, true
	case *policy.FullJitter:
		capd := or(v.Cap, policy.DefaultBackoffCap)
		return BackoffPromise{Min: v.Min, Max: capd, First: max(v.Min, min(or(v.Base, policy.DefaultBackoffBase), capd))}, true
	case *policy.EqualJitter:
		capd := or(v.Cap, policy.DefaultBackoffCap)
		return BackoffPromise{Max: capd, First: min(or(v.Base, policy.DefaultBackoffBase), capd)}, true
	case *policy.Decorrelated:
		base, capd := or(v.Base, policy.DefaultBackoffBase), or(v.Cap, policy.DefaultBackoffCap)
		return BackoffPromise{Min: base, Max: capd, First: min(3*base, capd)}, true
	case *policy.GRPC:
		j := v.Jitter
		if j == 0 {
			j = policy.GRPCJitter
		}
		capd := time.Duration(float64(or(v.Max, policy.GRPCMax)) * (1 + j))
		return BackoffPromise{Max: capd}, true
	case *policy.Table:
		// First must be positive to mean a bound: a table starting at 0 is
		// held to 1 ns.
		p := BackoffPromise{Min: slices.Min(v.Delays), Max: slices.Max(v.Delays), First: max(v.Delays[0], 1)}
		if !v.Repeat {
			p.MaxAttempts = len(v.Delays)
		}
		return p, true
	case *policy.Limit:
		p, ok := DeriveBackoff(v.Backoff)
		p.MaxAttempts, p.MaxElapsed = v.MaxAttempts, v.MaxElapsed
		return p, ok
	case *policy.Advised:
		fb := v.Fallback
		if fb == nil {
			fb = &policy.FullJitter{Rand: v.Rand}
		}
		p, ok := DeriveBackoff(fb)
		p.Min = 0 // an advised first delay may be anything in the window
		return p, ok
	}
	return BackoffPromise{}, false
}
