package policy

import (
	"math"
	"math/rand/v2"
	"time"
)

// Defaults of the exponential backoffs, used where a field is zero.
const (
	DefaultBackoffBase = time.Second      // the first delay's scale
	DefaultBackoffCap  = 30 * time.Second // the largest delay
)

// The gRPC connection-backoff spec's parameters (grpc/grpc
// doc/connection-backoff.md).
const (
	GRPCInitial    = time.Second
	GRPCMultiplier = 1.6
	GRPCJitter     = 0.2
	GRPCMax        = 120 * time.Second
	// GRPCMinConnectTimeout is the spec's MIN_CONNECT_TIMEOUT. It bounds a
	// dial, which is the Machine's job: fsm.DefaultConnectTimeout has the
	// same value.
	GRPCMinConnectTimeout = 20 * time.Second
)

// Every backoff here numbers dials as the Machine does: Retry.Attempt is 1
// for the first dial of a streak. The Machine starts a new streak after a
// connection stayed up fsm.Config.StableAfter (5 s by default), so "reset to
// the first delay after a stable period" is the Machine's; a backoff with
// memory (Decorrelated) starts over whenever Attempt is 1. Limits on attempts
// and total time come from wrapping any backoff in Limit.
//
// A backoff whose settings make no sense returns a *GaveUpError whose Cause
// is the *ConfigError, so the Machine closes with a clear reason instead of
// reconnecting at a rate nobody chose.

// uniform draws a delay uniformly from [lo, hi) (lo when hi <= lo). It uses
// Float64 so that a seeded source replays it exactly.
func uniform(r *rand.Rand, lo, hi float64) time.Duration {
	if hi <= lo {
		return time.Duration(lo)
	}
	return time.Duration(lo + r.Float64()*(hi-lo))
}

// grow returns base·mult^(n−1), kept finite.
func grow(base time.Duration, mult float64, n int) float64 {
	v := float64(base) * math.Pow(mult, float64(max(n, 1)-1))
	return min(v, math.MaxInt64)
}

func needRand(name string, r *rand.Rand) error {
	if r == nil {
		return invalid(name, "needs a random source: set Rand to a seeded *rand.Rand (math/rand/v2)")
	}
	return nil
}

// Exponential waits min(Max, Base·Multiplier^(n−1)·f) before dial n, where f
// is drawn uniformly from [1−Jitter, 1+Jitter] (1 without jitter). The
// jitter scales the uncapped value and the cap comes last, as in
// socket.io-client's backo2: once Base·Multiplier^(n−1)·(1−Jitter) passes
// Max every delay is Max.
type Exponential struct {
	Base       time.Duration // first delay; zero means DefaultBackoffBase
	Max        time.Duration // cap; zero means DefaultBackoffCap; >= Base
	Multiplier float64       // growth per dial; required, >= 1 (2 doubles)
	Jitter     float64       // randomization factor in [0, 1]; 0 means none
	Rand       *rand.Rand    // required when Jitter > 0
}

// checkBaseCap reports a base and cap (zero meaning the defaults) that are
// negative or out of order; capName is what the policy calls its cap.
func checkBaseCap(name, capName string, base, capd time.Duration) error {
	b, c := orDuration(base, DefaultBackoffBase), orDuration(capd, DefaultBackoffCap)
	if base < 0 || capd < 0 || c < b {
		return invalid(name, "need 0 < base %v <= %s %v (zero means %v and %v)", b, capName, c, DefaultBackoffBase, DefaultBackoffCap)
	}
	return nil
}

// Validate reports a configuration the policy cannot honour.
func (e *Exponential) Validate() error {
	const name = "exponential backoff"
	if err := checkBaseCap(name, "max", e.Base, e.Max); err != nil {
		return err
	}
	if !(e.Multiplier >= 1) || math.IsInf(e.Multiplier, 0) {
		return invalid(name, "multiplier %v must be finite and at least 1 (2 doubles each delay, 1 keeps it constant)", e.Multiplier)
	}
	if !(e.Jitter >= 0 && e.Jitter <= 1) {
		return invalid(name, "jitter %v must be in [0, 1]", e.Jitter)
	}
	if e.Jitter > 0 {
		return needRand(name, e.Rand)
	}
	return nil
}

// Next returns the delay before dial r.Attempt.
func (e *Exponential) Next(r Retry) (time.Duration, error) {
	if err := e.Validate(); err != nil {
		return 0, misconfigured(r, err)
	}
	capd := float64(orDuration(e.Max, DefaultBackoffCap))
	v := grow(orDuration(e.Base, DefaultBackoffBase), e.Multiplier, r.Attempt)
	if e.Jitter > 0 {
		v = min(v, 1e6*capd) // beyond this the cap decides anyway; keeps v·0 finite
		v = float64(uniform(e.Rand, v*(1-e.Jitter), v*(1+e.Jitter)))
	}
	return time.Duration(min(v, capd)), nil
}

// FullJitter is AWS's "full jitter": before dial n it waits a delay drawn
// uniformly from [Min, v) with v = min(Cap, Base·2^(n−1)) (Min when v <=
// Min). With Min zero this is AWS's uniform(0, min(cap, base·2ⁿ)).
type FullJitter struct {
	Base time.Duration // zero means DefaultBackoffBase
	Cap  time.Duration // zero means DefaultBackoffCap; >= Base
	Min  time.Duration // the least delay; zero means none; <= Cap
	Rand *rand.Rand    // required
}

// Validate reports a configuration the policy cannot honour.
func (f *FullJitter) Validate() error {
	const name = "full jitter backoff"
	base, capd := orDuration(f.Base, DefaultBackoffBase), orDuration(f.Cap, DefaultBackoffCap)
	if f.Base < 0 || f.Cap < 0 || f.Min < 0 || capd < base || f.Min > capd {
		return invalid(name, "need 0 <= min %v <= cap %v and 0 < base %v <= cap (zero means %v and %v)", f.Min, capd, base, DefaultBackoffBase, DefaultBackoffCap)
	}
	return needRand(name, f.Rand)
}

// Next returns the delay before dial r.Attempt.
func (f *FullJitter) Next(r Retry) (time.Duration, error) {
	if err := f.Validate(); err != nil {
		return 0, misconfigured(r, err)
	}
	v := min(grow(orDuration(f.Base, DefaultBackoffBase), 2, r.Attempt), float64(orDuration(f.Cap, DefaultBackoffCap)))
	return uniform(f.Rand, float64(f.Min), v), nil
}

// EqualJitter is AWS's "equal jitter": v/2 + uniform(0, v/2) with v =
// min(Cap, Base·2^(n−1)), so a delay never falls below half the envelope.
type EqualJitter struct {
	Base time.Duration // zero means DefaultBackoffBase
	Cap  time.Duration // zero means DefaultBackoffCap; >= Base
	Rand *rand.Rand    // required
}

// Validate reports a configuration the policy cannot honour.
func (e *EqualJitter) Validate() error {
	const name = "equal jitter backoff"
	if err := checkBaseCap(name, "cap", e.Base, e.Cap); err != nil {
		return err
	}
	return needRand(name, e.Rand)
}

// Next returns the delay before dial r.Attempt.
func (e *EqualJitter) Next(r Retry) (time.Duration, error) {
	if err := e.Validate(); err != nil {
		return 0, misconfigured(r, err)
	}
	v := min(grow(orDuration(e.Base, DefaultBackoffBase), 2, r.Attempt), float64(orDuration(e.Cap, DefaultBackoffCap)))
	return uniform(e.Rand, v/2, v), nil
}

// Decorrelated is AWS's "decorrelated jitter": sleep = min(Cap,
// uniform(Base, 3·sleep)), with sleep starting at Base on dial 1. It is the
// one backoff here with memory; it starts over whenever Attempt is 1.
type Decorrelated struct {
	Base time.Duration // zero means DefaultBackoffBase
	Cap  time.Duration // zero means DefaultBackoffCap; >= Base
	Rand *rand.Rand    // required

	sleep time.Duration
}

// Validate reports a configuration the policy cannot honour.
func (d *Decorrelated) Validate() error {
	const name = "decorrelated jitter backoff"
	if err := checkBaseCap(name, "cap", d.Base, d.Cap); err != nil {
		return err
	}
	return needRand(name, d.Rand)
}

// Next returns the delay before dial r.Attempt.
func (d *Decorrelated) Next(r Retry) (time.Duration, error) {
	if err := d.Validate(); err != nil {
		return 0, misconfigured(r, err)
	}
	base, capd := orDuration(d.Base, DefaultBackoffBase), orDuration(d.Cap, DefaultBackoffCap)
	if r.Attempt <= 1 || d.sleep < base {
		d.sleep = base
	}
	d.sleep = min(uniform(d.Rand, float64(base), 3*float64(d.sleep)), capd)
	return d.sleep, nil
}

// GRPC is gRPC's connection-backoff spec: the first dial after a loss goes
// out at once; if it fails the next waits Initial; after that each delay is
// min(Initial·Multiplier^(n−2), Max) scaled by a factor drawn uniformly from
// [1−Jitter, 1+Jitter], so a delay may exceed Max by the jitter, as the spec
// allows. The spec measures each deadline from the start of the failed
// attempt; the Machine measures from its failure, which differs by the
// duration of the dial. The spec's MIN_CONNECT_TIMEOUT (20 s) is the
// Machine's Config.ConnectTimeout.
type GRPC struct {
	Initial    time.Duration // zero means GRPCInitial
	Multiplier float64       // zero means GRPCMultiplier; >= 1
	Jitter     float64       // zero means GRPCJitter; in (0, 1]
	Max        time.Duration // zero means GRPCMax; >= Initial
	Rand       *rand.Rand    // required
}

// Validate reports a configuration the policy cannot honour.
func (g *GRPC) Validate() error {
	const name = "grpc backoff"
	initial, capd := orDuration(g.Initial, GRPCInitial), orDuration(g.Max, GRPCMax)
	if g.Initial < 0 || g.Max < 0 || capd < initial {
		return invalid(name, "need 0 < initial %v <= max %v (zero means %v and %v)", initial, capd, GRPCInitial, GRPCMax)
	}
	if m := orFloat(g.Multiplier, GRPCMultiplier); !(m >= 1) || math.IsInf(m, 0) {
		return invalid(name, "multiplier %v must be finite and at least 1 (zero means %v)", g.Multiplier, GRPCMultiplier)
	}
	if !(g.Jitter >= 0 && g.Jitter <= 1) {
		return invalid(name, "jitter %v must be in [0, 1] (zero means %v)", g.Jitter, GRPCJitter)
	}
	return needRand(name, g.Rand)
}

// Next returns the delay before dial r.Attempt.
func (g *GRPC) Next(r Retry) (time.Duration, error) {
	if err := g.Validate(); err != nil {
		return 0, misconfigured(r, err)
	}
	initial := orDuration(g.Initial, GRPCInitial)
	switch {
	case r.Attempt <= 1:
		return 0, nil
	case r.Attempt == 2:
		return initial, nil
	}
	b := min(grow(initial, orFloat(g.Multiplier, GRPCMultiplier), r.Attempt-1), float64(orDuration(g.Max, GRPCMax)))
	j := orFloat(g.Jitter, GRPCJitter)
	return uniform(g.Rand, b*(1-j), b*(1+j)), nil
}

// Table waits Delays[n−1] before dial n, as Phoenix's reconnectAfterMs and
// SignalR's DefaultReconnectPolicy do. Past the end it repeats the last
// entry if Repeat is set, and gives up otherwise.
type Table struct {
	Delays []time.Duration // at least one; none negative
	Repeat bool
}

// Validate reports a configuration the policy cannot honour.
func (t *Table) Validate() error {
	if len(t.Delays) == 0 {
		return invalid("table backoff", "needs at least one delay")
	}
	for i, d := range t.Delays {
		if d < 0 {
			return invalid("table backoff", "delay %d is %v: delays must not be negative", i+1, d)
		}
	}
	return nil
}

// Next returns the delay before dial r.Attempt, or an error wrapping
// ErrGaveUp past the end of a table that does not repeat.
func (t *Table) Next(r Retry) (time.Duration, error) {
	if err := t.Validate(); err != nil {
		return 0, misconfigured(r, err)
	}
	i := max(r.Attempt, 1) - 1
	switch {
	case i < len(t.Delays):
		return t.Delays[i], nil
	case t.Repeat:
		return t.Delays[len(t.Delays)-1], nil
	}
	return 0, gaveUp(r, "retry table exhausted")
}

// Limit wraps a Backoff with the common limits: it gives up before dial
// MaxAttempts+1 of a streak, and before any dial that would start more than
// MaxElapsed after the streak began. Zero means no limit. The Machine then
// closes with the *GaveUpError as its reason.
type Limit struct {
	Backoff     Backoff       // required
	MaxAttempts int           // >= 0
	MaxElapsed  time.Duration // >= 0
}

// Validate reports a configuration the policy cannot honour.
func (l *Limit) Validate() error {
	if l.Backoff == nil {
		return invalid("limit", "needs a backoff to limit")
	}
	if l.MaxAttempts < 0 || l.MaxElapsed < 0 {
		return invalid("limit", "max attempts %d and max total time %v must not be negative (zero means unlimited)", l.MaxAttempts, l.MaxElapsed)
	}
	if v, ok := l.Backoff.(Validator); ok {
		return v.Validate()
	}
	return nil
}

// Next returns the wrapped backoff's delay, or an error wrapping ErrGaveUp
// when a limit is reached.
func (l *Limit) Next(r Retry) (time.Duration, error) {
	if err := l.Validate(); err != nil {
		return 0, misconfigured(r, err)
	}
	if l.MaxAttempts > 0 && r.Attempt > l.MaxAttempts {
		return 0, gaveUp(r, "max attempts")
	}
	d, err := l.Backoff.Next(r)
	if err != nil {
		return 0, err
	}
	if l.MaxElapsed > 0 && r.Elapsed+d > l.MaxElapsed {
		return 0, gaveUp(r, "max total time")
	}
	return d, nil
}
