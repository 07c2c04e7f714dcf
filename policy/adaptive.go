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
	// DefaultProbes is how many probes must go unanswered before dead.
	DefaultProbes = 2
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
)

// Adaptive is the recommended detector. It learns how late heartbeats
// arrive and how much that varies, and asks for probes before it convicts.
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
//	α     = clamp(β·delay + φ·var, MinMargin, MaxMargin)
//
// (the first sample sets delay = L, var = L/2, as RFC 6298 does; before any
// sample α = Initial). Round trips of answered pings feed a second estimate
// the same way, rto = clamp(β·srtt + φ·rttvar, MinMargin, MaxMargin) (α when
// no ping was answered yet). Then, measured from the last evidence,
//
//	suspect = Interval + α
//	dead    = suspect + Probes·Probe + rto
//
// While suspect, the interval policy (AdaptiveInterval, Listen, or Idle with
// Probe set) sends a probe every Probe; the peer is declared dead only after
// Probes of them had a round trip's margin to be answered, so one late pong
// is not a verdict. Any evidence ends the suspicion. Set Interval and Probe
// to match the interval policies in use: its own when this side pings, the
// peer's when this side only listens.
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
	// Gain is γ, in (0, 1]. Zero means DefaultGain.
	Gain float64
	// Beta is β, at least 0. Zero means DefaultBeta.
	Beta float64
	// Phi is φ, at least 0. Zero means DefaultPhi.
	Phi float64
	// MinMargin and MaxMargin clamp both margins. Zero means
	// DefaultMinMargin and Interval; MinMargin <= MaxMargin.
	MinMargin, MaxMargin time.Duration
	// Initial is the margin before any sample. Zero means
	// DefaultInitialMargin; clamped to [MinMargin, MaxMargin].
	Initial time.Duration

	last      time.Time
	late, rtt ewma
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
	gain := orFloat(a.Gain, DefaultGain)
	if !(gain > 0 && gain <= 1) {
		return adaptiveParams{}, invalid(name, "gain γ %v must be in (0, 1] (zero means %v)", a.Gain, DefaultGain)
	}
	beta, phi := orFloat(a.Beta, DefaultBeta), orFloat(a.Phi, DefaultPhi)
	if !(beta >= 0) || math.IsInf(beta, 0) || !(phi >= 0) || math.IsInf(phi, 0) {
		return adaptiveParams{}, invalid(name, "weights β %v and φ %v must be finite and not negative (zero means %v and %v)", a.Beta, a.Phi, DefaultBeta, DefaultPhi)
	}
	minM, maxM := orDuration(a.MinMargin, DefaultMinMargin), orDuration(a.MaxMargin, iv)
	if a.MinMargin < 0 || a.MaxMargin < 0 || minM > maxM {
		return adaptiveParams{}, invalid(name, "margins must satisfy 0 <= min %v <= max %v (zero means %v and the interval)", minM, maxM, DefaultMinMargin)
	}
	if a.Initial < 0 {
		return adaptiveParams{}, invalid(name, "initial margin %v must not be negative (zero means %v)", a.Initial, DefaultInitialMargin)
	}
	initial := min(max(orDuration(a.Initial, DefaultInitialMargin), minM), maxM)
	return adaptiveParams{
		interval: float64(iv), probe: float64(probe), minM: float64(minM), maxM: float64(maxM), initial: float64(initial),
		probes: float64(probes), gain: gain, beta: beta, phi: phi,
	}, nil
}

// Start records the connect as the last evidence; estimates are kept.
func (a *Adaptive) Start(now time.Time) { a.last = now }

// Observe learns from the gap since the last evidence and from rtt.
func (a *Adaptive) Observe(now time.Time, rtt time.Duration) {
	p, err := a.params()
	if err != nil {
		return
	}
	if !a.last.IsZero() {
		if gap := float64(now.Sub(a.last)); gap >= p.interval/2 {
			a.late.add(min(max(gap-p.interval, 0), p.maxM), p.gain)
		}
	}
	a.last = now
	if rtt > 0 {
		a.rtt.add(min(float64(rtt), p.maxM), p.gain)
	}
}

// Timeouts returns suspect = Interval + α and dead = suspect +
// Probes·Probe + rto. An invalid configuration returns zeros, which the
// Machine rejects.
func (a *Adaptive) Timeouts() (suspect, dead time.Duration) {
	p, err := a.params()
	if err != nil {
		return 0, 0
	}
	alpha, rto := a.margins(p)
	s := p.interval + alpha
	return time.Duration(s), time.Duration(s + p.probes*p.probe + rto)
}

func (a *Adaptive) margins(p adaptiveParams) (alpha, rto float64) {
	alpha = p.initial
	if a.late.n > 0 {
		alpha = min(max(p.beta*a.late.mean+p.phi*a.late.dev, p.minM), p.maxM)
	}
	rto = alpha
	if a.rtt.n > 0 {
		rto = min(max(p.beta*a.rtt.mean+p.phi*a.rtt.dev, p.minM), p.maxM)
	}
	return alpha, rto
}

// AdaptiveEstimate is what an Adaptive detector has learned.
type AdaptiveEstimate struct {
	Lateness, LatenessDev time.Duration // mean lateness of heartbeats and its mean deviation
	RTT, RTTDev           time.Duration // smoothed round trip and its mean deviation
	Samples, RTTSamples   int           // how many of each were taken
	Margin, RTO           time.Duration // α and rto as Timeouts uses them
}

// Estimate returns what the detector has learned so far.
func (a *Adaptive) Estimate() AdaptiveEstimate {
	e := AdaptiveEstimate{
		Lateness: time.Duration(a.late.mean), LatenessDev: time.Duration(a.late.dev), Samples: a.late.n,
		RTT: time.Duration(a.rtt.mean), RTTDev: time.Duration(a.rtt.dev), RTTSamples: a.rtt.n,
	}
	if p, err := a.params(); err == nil {
		alpha, rto := a.margins(p)
		e.Margin, e.RTO = time.Duration(alpha), time.Duration(rto)
	}
	return e
}

// DetectionBound returns nb.MaxRTT + Interval + Probes·Probe + 2·MaxMargin:
// the margins can never exceed MaxMargin, whatever the detector learned. It
// promises accuracy only if its least dead timeout, Interval +
// Probes·Probe + 2·MinMargin, exceeds nb.Gap().
func (a *Adaptive) DetectionBound(nb NetworkBound) (time.Duration, error) {
	if err := nb.validate(); err != nil {
		return 0, err
	}
	p, err := a.params()
	if err != nil {
		return 0, err
	}
	wait := p.interval + p.probes*p.probe
	if least := time.Duration(wait + 2*p.minM); least <= nb.Gap() {
		return 0, noBound("adaptive detector", least, nb)
	}
	return nb.MaxRTT + time.Duration(wait+2*p.maxM), nil
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
