package proptest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/heartbeat-go/heartbeat/policy"
)

// PeerFunc returns the other side's interval policy for one connection,
// drawing any randomness from r.
type PeerFunc func(r *rand.Rand) policy.Interval

// ErrPromise is wrapped by every error about a promise the harness cannot
// check (a negative bound, a maximum below its minimum).
var ErrPromise = errors.New("proptest: invalid promise")

// PromiseError says which promise field is wrong and what would be right.
// It wraps ErrPromise.
type PromiseError struct {
	Field string // the promise field, e.g. "BackoffPromise.Max"
	Msg   string // what is wrong and what would be right
}

func (e *PromiseError) Error() string {
	return fmt.Sprintf("[%s %s] proptest: %s: %s", V1, invariantName(V1), e.Field, e.Msg)
}

// Unwrap returns ErrPromise.
func (e *PromiseError) Unwrap() error { return ErrPromise }

func promiseErr(field, format string, args ...any) error {
	return &PromiseError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Select chooses which invariants a check runs, by catalogue ID (see
// Catalogue). The zero value runs every invariant that applies.
type Select struct {
	// Only, if set, runs only these invariants.
	Only []string
	// Skip leaves these invariants out, for example B7 for a backoff that is
	// deliberately not jittered.
	Skip []string
}

func (s Select) on(id string) bool {
	if len(s.Only) > 0 && !slices.Contains(s.Only, id) {
		return false
	}
	return !slices.Contains(s.Skip, id)
}

func (s Select) validate(field string) error {
	for _, id := range append(slices.Clone(s.Only), s.Skip...) {
		if invariantName(id) == "unknown" {
			return promiseErr(field, "unknown invariant ID %q (see proptest.Catalogue)", id)
		}
	}
	return nil
}

func validateNetwork(field string, nb policy.NetworkBound, needHeartbeat bool) error {
	if nb.MaxRTT < 0 {
		return promiseErr(field+".MaxRTT", "%v must not be negative (zero means frames arrive at once)", nb.MaxRTT)
	}
	if nb.Heartbeat < 0 || (needHeartbeat && nb.Heartbeat == 0) {
		return promiseErr(field+".Heartbeat", "%v must be positive: the longest a live peer's line stays quiet before a heartbeat is sent", nb.Heartbeat)
	}
	return nil
}

// DetectorPromise is what a failure detector promises, checked by
// CheckDetector.
type DetectorPromise struct {
	Select
	// Network is the bound under which the detector must never declare a
	// live peer dead (A1), with policy.NetworkBound's one meaning:
	// Heartbeat is the longest the line stays quiet before a heartbeat is
	// sent, MaxRTT the longest from a heartbeat's sending to the arrival of
	// its evidence. Here the heartbeats are the peer's own messages, so
	// their evidence is the message itself: each takes at most MaxRTT one
	// way, and no two arrive more than Network.Gap() apart. Frames the peer
	// sent before it failed may still arrive up to MaxRTT later. Heartbeat
	// is required.
	Network policy.NetworkBound
	// NoSuspect promises that under Network the detector never even
	// suspects the peer (A2).
	NoSuspect bool
	// Detection is the longest time from the peer's failure to the dead
	// verdict (C1). Zero means the detector's own DetectionBound(Network)
	// (see policy.Bounded); without one C1 is not checked.
	Detection time.Duration
	// Lifetime is how long a healthy connection must stay up (A1, A2): a
	// quarter of the accuracy cases keep one healthy connection this long.
	// Zero means DefaultLifetime.
	Lifetime time.Duration
}

// DefaultLifetime is the healthy connection lifetime a promise that states
// none is held to: long enough to catch a policy that gives up on
// connections after an hour.
const DefaultLifetime = 2 * time.Hour

func validateLifetime(field string, l time.Duration) error {
	if l < 0 || (l > 0 && l < time.Minute) || l > 48*time.Hour {
		return promiseErr(field, "%v must be in [1m, 48h] (zero means DefaultLifetime, %v)", l, DefaultLifetime)
	}
	return nil
}

func (p DetectorPromise) validate() error {
	if err := validateNetwork("DetectorPromise.Network", p.Network, true); err != nil {
		return err
	}
	if err := validateLifetime("DetectorPromise.Lifetime", p.Lifetime); err != nil {
		return err
	}
	if p.Detection < 0 {
		return promiseErr("DetectorPromise.Detection", "%v must not be negative (zero means the detector's own bound)", p.Detection)
	}
	if p.Detection > 0 && p.Detection <= p.Network.Gap() {
		return promiseErr("DetectorPromise.Detection", "%v must be longer than the longest live silence %v (Network.Gap()): a detector that convicts within a healthy gap cannot be accurate", p.Detection, p.Network.Gap())
	}
	return p.Select.validate("DetectorPromise.Select")
}

// IntervalPromise is what an interval policy promises, checked by
// CheckInterval.
type IntervalPromise struct {
	Select
	// Min: two pings on one connection are never closer than this (P1).
	// Zero means fsm.DefaultMinPingInterval, which the Machine enforces.
	Min time.Duration
	// Max: while the connection is up, the line is never idle longer than
	// this without a ping (P2). Zero means the policy promises nothing here
	// (a side that only listens, like policy.Never).
	Max time.Duration
}

func (p IntervalPromise) validate() error {
	if p.Min < 0 {
		return promiseErr("IntervalPromise.Min", "%v must not be negative (zero means the machine's minimum ping interval)", p.Min)
	}
	if p.Max < 0 {
		return promiseErr("IntervalPromise.Max", "%v must not be negative (zero means no promise)", p.Max)
	}
	if p.Max > 0 && p.Max < p.Min {
		return promiseErr("IntervalPromise.Max", "%v must not be shorter than Min %v", p.Max, p.Min)
	}
	return p.Select.validate("IntervalPromise.Select")
}

// BackoffPromise is what a reconnect backoff promises, checked by
// CheckBackoff.
type BackoffPromise struct {
	Select
	// Min is the shortest delay (B1); zero means no lower bound beyond 0.
	Min time.Duration
	// Max is the cap (B1); zero means no cap is promised.
	Max time.Duration
	// First bounds the delay of attempt 1, fresh or after a reset (B5). Zero
	// means twice the largest first delay of 32 fresh instances.
	First time.Duration
	// MaxAttempts: the backoff gives up exactly after this many attempts
	// (B3). Zero means it never gives up on attempts.
	MaxAttempts int
	// MaxElapsed: no dial is scheduled later than this after the streak
	// began, the backoff gives up once this much has elapsed, and it never
	// gives up before, unless its next delay would cross the limit (at most
	// Max, or twice the longest delay it gave in the streak) (B4). Zero
	// means no time limit.
	MaxElapsed time.Duration
	// Storm sets the storm-spreading check (B7).
	Storm StormPromise
}

func (p BackoffPromise) validate() error {
	switch {
	case p.Min < 0:
		return promiseErr("BackoffPromise.Min", "%v must not be negative", p.Min)
	case p.Max < 0:
		return promiseErr("BackoffPromise.Max", "%v must not be negative (zero means no cap)", p.Max)
	case p.Max > 0 && p.Max < p.Min:
		return promiseErr("BackoffPromise.Max", "cap %v must not be below Min %v", p.Max, p.Min)
	case p.First < 0:
		return promiseErr("BackoffPromise.First", "%v must not be negative (zero means estimated)", p.First)
	case p.MaxAttempts < 0:
		return promiseErr("BackoffPromise.MaxAttempts", "%d must not be negative (zero means unlimited)", p.MaxAttempts)
	case p.MaxElapsed < 0:
		return promiseErr("BackoffPromise.MaxElapsed", "%v must not be negative (zero means unlimited)", p.MaxElapsed)
	}
	if err := p.Storm.validate(); err != nil {
		return err
	}
	return p.Select.validate("BackoffPromise.Select")
}

// StormPromise parameterises the storm-spreading property (B7): Clients
// clients lose the server at the same instant and every dial fails for
// Rounds rounds. Zero fields mean the defaults in brackets.
type StormPromise struct {
	// Clients is how many clients fail at once [200].
	Clients int
	// Rounds is how many rounds of attempts are examined [3].
	Rounds int
	// MaxRatio bounds the busiest window (a tenth of the mean first delay)
	// against a uniform spread of the round over twice the mean first
	// delay [8: at most 40% of the clients in one window].
	MaxRatio float64
	// Advice is the reconnect window a server advertised before it went
	// away [0: none].
	Advice time.Duration
	// MinSpread is the least time, in absolute terms, over which the
	// clients' attempts must spread [DefaultMinSpread]: the uniform spread
	// the busiest window is compared with covers max(twice the mean first
	// delay, MinSpread), so jitter within a millisecond is still a storm.
	MinSpread time.Duration
}

// DefaultMinSpread is the storm property's least absolute spread: a server
// that takes a second to accept 10,000 clients is a fast one.
const DefaultMinSpread = time.Second

func (p StormPromise) validate() error {
	switch {
	case p.Clients < 0 || p.Clients == 1:
		return promiseErr("StormPromise.Clients", "%d: need at least 2 clients (zero means 200)", p.Clients)
	case p.Rounds < 0:
		return promiseErr("StormPromise.Rounds", "%d must not be negative (zero means 3)", p.Rounds)
	case p.MaxRatio < 0 || (p.MaxRatio > 0 && p.MaxRatio < 1):
		return promiseErr("StormPromise.MaxRatio", "%v must be at least 1 (zero means 8)", p.MaxRatio)
	case p.Advice < 0:
		return promiseErr("StormPromise.Advice", "%v must not be negative", p.Advice)
	case p.MinSpread < 0:
		return promiseErr("StormPromise.MinSpread", "%v must not be negative (zero means %v)", p.MinSpread, DefaultMinSpread)
	}
	return nil
}

func (p StormPromise) withDefaults() StormPromise {
	if p.Clients == 0 {
		p.Clients = 200
	}
	if p.Rounds == 0 {
		p.Rounds = 3
	}
	if p.MaxRatio == 0 {
		p.MaxRatio = 8
	}
	if p.MinSpread == 0 {
		p.MinSpread = DefaultMinSpread
	}
	return p
}

// MachinePromise is what a whole machine configuration promises, checked
// by CheckMachine.
type MachinePromise struct {
	Select
	// Network is the bound under which the machine must be accurate (A1,
	// A2), with policy.NetworkBound's one meaning (as in DetectorPromise):
	// MaxRTT is the longest from a heartbeat's sending to the arrival of
	// its evidence. Here the heartbeats are pings and their evidence the
	// pongs, so on a healthy link each frame takes at most MaxRTT/2 one
	// way and a ping is answered within MaxRTT. Frames the peer sent before
	// it failed may still arrive up to MaxRTT later (C1). Heartbeat, the
	// longest the line stays idle before either side pings, is needed only
	// to ask the detector for its bound.
	Network policy.NetworkBound
	// Detection is the longest time from the peer's failure to the dead
	// verdict (C1). Zero means the detector's own DetectionBound(Network)
	// (see policy.Bounded); without one C1 is not checked.
	Detection time.Duration
	// NoSuspect promises the machine never suspects a healthy peer (A2).
	NoSuspect bool
	// Lifetime is how long a healthy connection must stay up (A1, A2): a
	// quarter of the accuracy cases keep one healthy connection this long.
	// Zero means DefaultLifetime.
	Lifetime time.Duration
	// Interval, if set, is checked on every connection (P1, P2).
	Interval *IntervalPromise
	// Backoff, if set, bounds every reconnect delay the machine takes (B1).
	Backoff *BackoffPromise
	// Peer returns the peer's interval policy: how often the other side
	// pings on its own. Nil means a peer that only answers pings. The peer
	// pings as fast as its policy asks, even faster than the configuration's
	// MinPingInterval (which spaces only our own pings); a peer that asks to
	// ping faster than the flood meter allows, min(MinPingInterval,
	// fsm.DefaultMinPingInterval), is refused (V1): the machine would
	// rightly convict it.
	Peer PeerFunc
}

func (p MachinePromise) validate() error {
	if err := validateNetwork("MachinePromise.Network", p.Network, false); err != nil {
		return err
	}
	if err := validateLifetime("MachinePromise.Lifetime", p.Lifetime); err != nil {
		return err
	}
	if p.Detection < 0 {
		return promiseErr("MachinePromise.Detection", "%v must not be negative (zero means the detector's own bound)", p.Detection)
	}
	if p.Interval != nil {
		if err := p.Interval.validate(); err != nil {
			return err
		}
	}
	if p.Backoff != nil {
		if err := p.Backoff.validate(); err != nil {
			return err
		}
	}
	return p.Select.validate("MachinePromise.Select")
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}
