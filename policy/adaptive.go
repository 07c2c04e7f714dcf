package policy

import (
	"math"
	"time"
)

// Defaults of Adaptive, used where a field is zero.
const (
	// DefaultAdaptiveInterval is the heartbeat interval Adaptive expects and
	// AdaptiveInterval keeps while the link is stable: short enough to
	// notice a dead peer within seconds, long enough to cost 24 small
	// frames a minute on an idle connection.
	DefaultAdaptiveInterval = 5 * time.Second
	// DefaultProbe is the gap between probes while the peer is suspect
	// (never more than half the interval).
	DefaultProbe = time.Second
	// DefaultProbes is how many probes must go unanswered before dead: one,
	// given a round trip with a retransmission's margin (rto) to answer.
	// On a stream transport (TCP) a later probe queues behind a lost one
	// and cannot answer sooner, so more probes mostly add waiting.
	DefaultProbes = 1
	// DefaultGain is γ, the weight of each new sample (Bertier et al.).
	DefaultGain = 0.1
	// DefaultBeta is β, the weight of the mean lateness in the margin.
	DefaultBeta = 1.0
	// DefaultPhi is φ, the weight of the variation in the margin (RFC 6298's
	// K = 4).
	DefaultPhi = 4.0
	// DefaultMinMargin is the least safety margin: a little above one TCP
	// retransmission timeout (Linux's 200 ms floor), so one retransmitted
	// segment does not raise suspicion.
	DefaultMinMargin = 250 * time.Millisecond
	// DefaultInitialMargin is the margin used before any sample, RFC 6298's
	// initial RTO.
	DefaultInitialMargin = time.Second
	// DefaultRetransmit is what one lost segment adds to a round trip on a
	// stream transport: Linux's minimum TCP retransmission timeout
	// (TCP_RTO_MIN, 200 ms). rto leaves room for one retransmission.
	DefaultRetransmit = 200 * time.Millisecond
	// DefaultHeadroom is how far beyond the worst remembered lateness of
	// a live peer the detector waits before convicting (but never more
	// than Slack beyond it). The worst lateness a link shows most
	// of the time is one lost segment: a round trip plus a 200 ms
	// retransmission. A stall on the same path (a Wi-Fi roam, a
	// handover) holds a segment through several doublings of the
	// retransmission timeout: 0.2 + 0.4 + 0.8 + 1.6 = 3 s for a 1.5 s
	// stall, 11 to 14 times the one-loss lateness. 14 is measured: with
	// these formulas 10 and 12 each left a false dead on hbsim's wan
	// profile on some of seeds 1 to 4, 14 none (docs/results.md).
	DefaultHeadroom = 14.0
	// DefaultMemory is how many heartbeats the worst lateness takes to
	// decay by a factor e (it shrinks by 1/Memory of itself per sample):
	// 720 samples is an hour at the default interval.
	DefaultMemory = 720
	// DefaultSlack caps how far beyond the worst remembered lateness the
	// tolerance reaches: a link that has already stalled for 10 s is
	// allowed 15 s of lateness, not 140 s. How much worse the next stall
	// can be is a property of the network, not of the heartbeat interval,
	// so it is a duration (at the default interval it equals one
	// interval).
	DefaultSlack = 5 * time.Second
	// DefaultWarmup is how many heartbeats the prior on the worst lateness
	// (Initial) takes to decay by a factor e: 60 samples are 5 minutes at
	// the default interval. Until a link has shown what it does, the
	// detector assumes it may stall for about a second.
	DefaultWarmup = 20
	// DefaultMaxToleranceFactor bounds the remembered tolerance:
	// MaxTolerance defaults to this many Intervals.
	DefaultMaxToleranceFactor = 6
)

// Adaptive is the recommended detector. It learns how late heartbeats
// arrive, how much that varies and the worst silence a live peer has left,
// and asks for a probe before it convicts.
//
// Idea. On an idle line the next evidence is due Interval after the last one
// (the pinging side's idle interval; a pong adds one round trip). Adaptive
// keeps a Jacobson/Karels estimate of the lateness of that evidence, as
// Bertier, Marin and Sens (2002) applied RFC 6298 to heartbeats: for every
// gap g ≥ Interval/2 between two pieces of evidence (shorter gaps are data
// between heartbeats and say nothing about lateness), with the sample
// L = max(0, g − Interval) capped at MaxMargin,
//
//	err   = L − delay
//	delay = delay + γ·err
//	var   = var + γ·(|err| − var)
//
// (the first sample sets delay = L, var = L/2, as RFC 6298 does). Round
// trips of answered pings feed a second estimate the same way (srtt,
// rttvar). A side that only listens rarely pings, but the lateness of its
// peer's heartbeats is a round trip (the peer pings Interval after its last
// evidence), so the round-trip term falls back on the lateness estimate:
//
//	r   = β·srtt + φ·rttvar       (β·delay + φ·var before any answered ping)
//	rto = clamp(r + Retransmit, MinMargin, MaxMargin)
//	α   = clamp(max(β·delay + φ·var, rto), MinMargin, MaxMargin)
//
// rto is a round trip with room for one lost segment (Retransmit, TCP's
// 200 ms minimum retransmission timeout), so suspicion is not raised by a
// single retransmission, and α is never below it. Before any sample α = rto
// = Initial. The detector also remembers the worst lateness of evidence
// that did arrive — a slowly decaying maximum, kept across reconnects —
// and, until it has history, assumes a prior of Initial that fades:
//
//	worst = max(min(g − Interval, MaxTolerance), worst·(1 − 1/Memory))
//	prior = prior·(1 − 1/Warmup)        (Initial at the first sample)
//	w     = max(worst, prior)
//	tol   = min(Headroom·w, w + Slack, MaxTolerance)
//
// Then, measured from the last evidence,
//
//	suspect = Interval + α
//	dead    = Interval + max(α + (Probes−1)·Probe + rto, tol)
//
// The first probe is the ping sent at the suspicion (Listen, and Idle with
// Probe set) or the regular ping just before it (AdaptiveInterval, whose
// ping goes out α before the suspicion); each further probe follows Probe
// later, and the last one has at least rto to be answered, so one late pong
// is not a verdict. On a quiet, lossless link that is twice MinMargin past
// the heartbeat (rto is a round trip plus one retransmission); a link that has shown long silences (a handover
// stall stretched by TCP's doubling retransmission timeout) is never
// convicted within Headroom times the longest one it survived (at most
// Slack more). Any evidence
// ends the suspicion. Set Interval and Probe to match the interval policies
// in use: its own when this side pings, the peer's when this side only
// listens.
//
// State is O(1) (a few numbers); Observe and Timeouts allocate nothing. What
// it learned survives a reconnect (the path is usually the same). The zero
// value is ready to use with the defaults above; fields are read at every
// call, so change them only between connections.
type Adaptive struct {
	// Interval is the heartbeat interval expected on an idle line. Zero
	// means DefaultAdaptiveInterval; at least MinPingGap.
	Interval time.Duration
	// Probe is the gap between probes while suspect. Zero means
	// min(DefaultProbe, Interval/2); in [MinPingGap, Interval).
	Probe time.Duration
	// Probes is how many probes go unanswered before dead. Zero means
	// DefaultProbes; not negative.
	Probes int
	// MinMargin and MaxMargin are the floor and the ceiling of both
	// margins: how little and how much past Interval the detector may
	// suspect. Zero means DefaultMinMargin and Interval; MinMargin <=
	// MaxMargin.
	MinMargin, MaxMargin time.Duration
	// MaxTolerance caps the remembered tolerance (and the worst lateness
	// sample): the longest silence a live peer may have left that the
	// detector will tolerate again. Zero means
	// DefaultMaxToleranceFactor·Interval; not negative.
	MaxTolerance time.Duration
	// Tuning holds the estimator's constants. Its zero value is the
	// defaults, which every figure in the docs was measured with; leave it
	// alone unless a simulation says otherwise.
	Tuning AdaptiveTuning

	last      time.Time
	advice    float64 // the fleet's dead-timeout advice, in nanoseconds; 0 for none
	late, rtt ewma
	worst     float64 // decaying maximum lateness, in nanoseconds
	prior     float64 // the decaying prior on worst, in nanoseconds

	// timeouts caches Timeouts until the next Start or Observe: the
	// Machine asks several times per step. Zero means not computed.
	timeouts [2]time.Duration
}

// AdaptiveTuning is Adaptive's estimator constants (see Adaptive for
// the formulas they enter). Each zero field means its default.
type AdaptiveTuning struct {
	// Gain is γ, in (0, 1]. Zero means DefaultGain.
	Gain float64
	// Beta is β, at least 0. Zero means DefaultBeta.
	Beta float64
	// Phi is φ, at least 0. Zero means DefaultPhi.
	Phi float64
	// Initial is the margin before any sample. Zero means
	// DefaultInitialMargin; clamped to [MinMargin, MaxMargin].
	Initial time.Duration
	// Retransmit is the delay one lost segment adds to a round trip. Zero
	// means DefaultRetransmit; not negative.
	Retransmit time.Duration
	// Headroom multiplies the worst remembered lateness into the least
	// tolerated silence beyond Interval. Zero means DefaultHeadroom; at
	// least 0 (a tiny positive value effectively switches the memory off).
	Headroom float64
	// Memory is the worst lateness's decay time in samples. Zero means
	// DefaultMemory; at least 1.
	Memory float64
	// Slack is the most the tolerance exceeds the worst remembered
	// lateness. Zero means DefaultSlack; not negative.
	Slack time.Duration
	// Warmup is the decay time in samples of the prior on the worst
	// lateness, Initial, that a detector without history starts from.
	// Zero means DefaultWarmup; at least 1.
	Warmup float64
}

// ewma is a Jacobson/Karels mean and mean deviation, in nanoseconds.
type ewma struct {
	mean, dev float64
	n         int
}

func (e *ewma) add(x, gain float64) {
	if e.n == 0 {
		e.mean, e.dev = x, x/2
	} else {
		err := x - e.mean
		e.mean += gain * err
		e.dev += gain * (math.Abs(err) - e.dev)
	}
	e.n++
}

// adaptiveParams are an Adaptive's settings with defaults applied, in
// nanoseconds.
type adaptiveParams struct {
	interval, probe, minM, maxM, initial float64
	probes, gain, beta, phi              float64
	retransmit, headroom, forget, maxTol float64
	warm, slack                          float64
}

// NewAdaptive returns a validated Adaptive detector expecting a heartbeat
// every interval and probing every probe while suspect (zero means the
// defaults).
func NewAdaptive(interval, probe time.Duration) (*Adaptive, error) {
	a := &Adaptive{Interval: interval, Probe: probe}
	if err := a.Validate(); err != nil {
		return nil, err
	}
	return a, nil
}

// Validate reports a configuration the detector cannot honour.
func (a *Adaptive) Validate() error {
	_, err := a.params()
	return err
}

func (a *Adaptive) params() (adaptiveParams, error) {
	const name = "adaptive detector"
	iv := orDuration(a.Interval, DefaultAdaptiveInterval)
	if iv < MinPingGap {
		return adaptiveParams{}, invalid(name, "heartbeat interval %v must be at least %v (zero means %v)", a.Interval, MinPingGap, DefaultAdaptiveInterval)
	}
	probe := a.Probe
	if probe == 0 {
		probe = max(min(DefaultProbe, iv/2), MinPingGap)
	}
	if probe < MinPingGap || probe >= iv {
		return adaptiveParams{}, invalid(name, "probe interval %v must be at least %v and shorter than the heartbeat interval %v", probe, MinPingGap, iv)
	}
	if a.Probes < 0 {
		return adaptiveParams{}, invalid(name, "probes %d must not be negative (zero means %d)", a.Probes, DefaultProbes)
	}
	probes := a.Probes
	if probes == 0 {
		probes = DefaultProbes
	}
	gain := orFloat(a.Tuning.Gain, DefaultGain)
	if !(gain > 0 && gain <= 1) {
		return adaptiveParams{}, invalid(name, "gain γ %v must be in (0, 1] (zero means %v)", a.Tuning.Gain, DefaultGain)
	}
	beta, phi := orFloat(a.Tuning.Beta, DefaultBeta), orFloat(a.Tuning.Phi, DefaultPhi)
	if !(beta >= 0) || math.IsInf(beta, 0) || !(phi >= 0) || math.IsInf(phi, 0) {
		return adaptiveParams{}, invalid(name, "weights β %v and φ %v must be finite and not negative (zero means %v and %v)", a.Tuning.Beta, a.Tuning.Phi, DefaultBeta, DefaultPhi)
	}
	minM, maxM := orDuration(a.MinMargin, DefaultMinMargin), orDuration(a.MaxMargin, iv)
	if a.MinMargin < 0 || a.MaxMargin < 0 || minM > maxM {
		return adaptiveParams{}, invalid(name, "margins must satisfy 0 <= min %v <= max %v (zero means %v and the interval)", minM, maxM, DefaultMinMargin)
	}
	if a.Tuning.Initial < 0 {
		return adaptiveParams{}, invalid(name, "initial margin %v must not be negative (zero means %v)", a.Tuning.Initial, DefaultInitialMargin)
	}
	initial := min(max(orDuration(a.Tuning.Initial, DefaultInitialMargin), minM), maxM)
	if a.Tuning.Slack < 0 {
		return adaptiveParams{}, invalid(name, "slack %v must not be negative (zero means %v)", a.Tuning.Slack, DefaultSlack)
	}
	if a.Tuning.Retransmit < 0 || a.MaxTolerance < 0 {
		return adaptiveParams{}, invalid(name, "retransmit %v and max tolerance %v must not be negative (zero means %v and %d × the interval)", a.Tuning.Retransmit, a.MaxTolerance, DefaultRetransmit, DefaultMaxToleranceFactor)
	}
	headroom := orFloat(a.Tuning.Headroom, DefaultHeadroom)
	if !(headroom >= 0) || math.IsInf(headroom, 0) {
		return adaptiveParams{}, invalid(name, "headroom %v must be finite and not negative (zero means %v)", a.Tuning.Headroom, DefaultHeadroom)
	}
	memory := orFloat(a.Tuning.Memory, DefaultMemory)
	if !(memory >= 1) || math.IsInf(memory, 0) {
		return adaptiveParams{}, invalid(name, "memory %v must be at least 1 sample and finite (zero means %v)", a.Tuning.Memory, DefaultMemory)
	}
	maxTol := orDuration(a.MaxTolerance, DefaultMaxToleranceFactor*iv)
	warmup := orFloat(a.Tuning.Warmup, DefaultWarmup)
	if !(warmup >= 1) || math.IsInf(warmup, 0) {
		return adaptiveParams{}, invalid(name, "warmup %v must be at least 1 sample and finite (zero means %v)", a.Tuning.Warmup, DefaultWarmup)
	}
	return adaptiveParams{
		interval: float64(iv), probe: float64(probe), minM: float64(minM), maxM: float64(maxM), initial: float64(initial),
		probes: float64(probes), gain: gain, beta: beta, phi: phi,
		retransmit: float64(orDuration(a.Tuning.Retransmit, DefaultRetransmit)), headroom: headroom,
		forget: 1 - 1/memory, maxTol: float64(maxTol), warm: 1 - 1/warmup,
		slack: float64(orDuration(a.Tuning.Slack, DefaultSlack)),
	}, nil
}

// Start records the connect as the last evidence; estimates are kept.
func (a *Adaptive) Start(now time.Time) { a.last = now; a.timeouts = [2]time.Duration{} }

// Observe learns from the gap since the last evidence and from rtt.
func (a *Adaptive) Observe(now time.Time, rtt time.Duration) {
	a.timeouts = [2]time.Duration{}
	p, err := a.params()
	if err != nil {
		return
	}
	if !a.last.IsZero() {
		if gap := float64(now.Sub(a.last)); gap >= p.interval/2 {
			l := max(gap-p.interval, 0)
			if a.late.n == 0 {
				a.prior = p.initial
			}
			a.late.add(min(l, p.maxM), p.gain)
			a.worst = max(min(l, p.maxTol), a.worst*p.forget)
			a.prior *= p.warm
		}
	}
	a.last = now
	if rtt > 0 {
		a.rtt.add(min(float64(rtt), p.maxM), p.gain)
	}
}

// Timeouts returns suspect = Interval + α and dead = Interval + max(α +
// (Probes−1)·Probe + rto, tol). An invalid configuration returns zeros,
// which the Machine rejects.
func (a *Adaptive) Timeouts() (suspect, dead time.Duration) {
	if a.timeouts[1] > 0 {
		return a.timeouts[0], a.timeouts[1]
	}
	p, err := a.params()
	if err != nil {
		return 0, 0
	}
	alpha, rto, tol := a.margins(p)
	suspect, dead = time.Duration(p.interval+alpha), time.Duration(p.interval+max(alpha+(p.probes-1)*p.probe+rto, tol))
	a.timeouts = [2]time.Duration{suspect, dead}
	return suspect, dead
}

// Advise gives the detector a fleet's dead-timeout advice (see Fleet): the
// silence that live connections like this one rarely exceed. From then on
// the tolerance is at least advice − Interval, so a new connection
// survives the stalls the fleet has seen before it has seen one itself:
//
//	tol = min(max(min(Headroom·w, w + Slack), advice − Interval), MaxTolerance)
//
// The advice only raises the tolerance: the fleet sees only the silences
// that the dead timeouts in use let end in a frame (longer ones end in a
// verdict), so advice below what a connection has learned would censor the
// very silences that should raise it.
//
// Advice below MinAdvice is no advice (the detector's own estimate
// applies); above MaxAdvice it is clamped; and tol never exceeds
// MaxTolerance, so DetectionBound holds whatever the advice. A later
// advice replaces the earlier one; what the detector learned is kept.
func (a *Adaptive) Advise(dead time.Duration) {
	a.timeouts = [2]time.Duration{}
	if dead < MinAdvice {
		a.advice = 0
		return
	}
	a.advice = float64(min(dead, MaxAdvice))
}

func (a *Adaptive) margins(p adaptiveParams) (alpha, rto, tol float64) {
	w := max(a.worst, a.prior)
	tol = min(p.headroom*w, w+p.slack, p.maxTol)
	if a.advice > 0 {
		tol = min(max(tol, a.advice-p.interval), p.maxTol)
	}
	var r float64
	switch {
	case a.rtt.n > 0:
		r = p.beta*a.rtt.mean + p.phi*a.rtt.dev
	case a.late.n > 0:
		r = p.beta*a.late.mean + p.phi*a.late.dev
	default:
		return p.initial, p.initial, tol
	}
	rto = min(max(r+p.retransmit, p.minM), p.maxM)
	alpha = rto
	if a.late.n > 0 {
		alpha = min(max(p.beta*a.late.mean+p.phi*a.late.dev, rto), p.maxM)
	}
	return alpha, rto, tol
}

// AdaptiveEstimate is what an Adaptive detector has learned.
type AdaptiveEstimate struct {
	Lateness, LatenessDev time.Duration // mean lateness of heartbeats and its mean deviation
	RTT, RTTDev           time.Duration // smoothed round trip and its mean deviation
	Samples, RTTSamples   int           // how many of each were taken
	Margin, RTO           time.Duration // α and rto as Timeouts uses them
	Worst, Tolerance      time.Duration // the decaying worst lateness and tol
}

// Estimate returns what the detector has learned so far.
func (a *Adaptive) Estimate() AdaptiveEstimate {
	e := AdaptiveEstimate{
		Lateness: time.Duration(a.late.mean), LatenessDev: time.Duration(a.late.dev), Samples: a.late.n,
		RTT: time.Duration(a.rtt.mean), RTTDev: time.Duration(a.rtt.dev), RTTSamples: a.rtt.n,
		Worst: time.Duration(a.worst),
	}
	if p, err := a.params(); err == nil {
		alpha, rto, tol := a.margins(p)
		e.Margin, e.RTO, e.Tolerance = time.Duration(alpha), time.Duration(rto), time.Duration(tol)
	}
	return e
}

// DetectionBound returns nb.MaxRTT + Interval + max(2·MaxMargin +
// (Probes−1)·Probe, MaxTolerance): α and rto can never exceed MaxMargin nor
// tol MaxTolerance, whatever the detector learned. It promises accuracy
// only if its least dead timeout, Interval + (Probes−1)·Probe + 2·MinMargin
// (α and rto at their floor, nothing remembered), exceeds nb.Gap().
func (a *Adaptive) DetectionBound(nb NetworkBound) (time.Duration, error) {
	if err := nb.validate(); err != nil {
		return 0, err
	}
	p, err := a.params()
	if err != nil {
		return 0, err
	}
	wait := p.interval + (p.probes-1)*p.probe
	if least := time.Duration(wait + 2*p.minM); least <= nb.Gap() {
		return 0, noBound("adaptive detector", least, nb)
	}
	return nb.MaxRTT + time.Duration(p.interval+max(2*p.maxM+(p.probes-1)*p.probe, p.maxTol)), nil
}

func orDuration(v, def time.Duration) time.Duration {
	if v == 0 {
		return def
	}
	return v
}

func orFloat(v, def float64) float64 {
	if v == 0 {
		return def
	}
	return v
}
