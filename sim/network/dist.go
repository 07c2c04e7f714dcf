package network

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Dist names the shape of a latency (or duration) distribution.
type Dist uint8

const (
	// Constant: always Mean.
	Constant Dist = iota
	// Uniform: uniform on [Mean−Jitter, Mean+Jitter].
	Uniform
	// Normal: normal with mean Mean and standard deviation Jitter.
	Normal
	// LogNormal: log-normal with median Mean; Shape is σ of the logarithm.
	LogNormal
	// Pareto: Pareto (heavy tail) with minimum Mean and tail index Shape
	// (> 1; the smaller, the heavier the tail).
	Pareto
	// Exponential: exponential with mean Mean (the gaps of a Poisson process).
	Exponential
	// Edge: uniform on [Mean−Jitter, Mean+Jitter], except that one sample
	// in four is exactly Mean+Jitter. It is for checking what a bound
	// promises: the worst delay the bound allows comes often, not almost
	// never.
	Edge
)

var distNames = [...]string{"constant", "uniform", "normal", "lognormal", "pareto", "exponential", "edge"}

func (d Dist) String() string {
	if int(d) < len(distNames) {
		return distNames[d]
	}
	return "dist(?)"
}

// Latency is a distribution of durations: one-way link delays, stall and
// outage lengths, gaps between faults. Samples are never negative and never
// above Max (when Max is set). The zero value is a constant zero.
type Latency struct {
	Dist   Dist
	Mean   time.Duration // see Dist for what it means for each shape
	Jitter time.Duration // Uniform: half width; Normal: standard deviation
	Shape  float64       // LogNormal: σ of ln; Pareto: tail index α > 1
	Max    time.Duration // clamp on samples; 0 means none
}

// Validate reports a distribution that cannot be sampled.
func (l Latency) Validate() error {
	switch {
	case l.Dist > Edge:
		return fmt.Errorf("network: unknown distribution %d (want constant, uniform, normal, lognormal, pareto, exponential or edge)", l.Dist)
	case l.Mean < 0 || l.Jitter < 0 || l.Max < 0:
		return fmt.Errorf("network: %v distribution mean %v, jitter %v, max %v must not be negative", l.Dist, l.Mean, l.Jitter, l.Max)
	case l.Dist == LogNormal && (l.Shape <= 0 || l.Shape > 5):
		return fmt.Errorf("network: lognormal shape σ %g must be in (0, 5]", l.Shape)
	case l.Dist == Pareto && (l.Shape <= 1 || l.Mean == 0):
		return fmt.Errorf("network: pareto needs a minimum > 0 (got %v) and a tail index > 1 (got %g) so the mean is finite", l.Mean, l.Shape)
	}
	return nil
}

// Sample draws one duration in nanoseconds.
func (l *Latency) Sample(r *rand.Rand) int64 {
	var v float64
	m := float64(l.Mean)
	switch l.Dist {
	case Constant:
		return clampNS(m, l.Max)
	case Uniform:
		v = m + (2*r.Float64()-1)*float64(l.Jitter)
	case Normal:
		v = m + r.NormFloat64()*float64(l.Jitter)
	case LogNormal:
		v = m * math.Exp(l.Shape*r.NormFloat64())
	case Pareto:
		v = m / math.Pow(1-r.Float64(), 1/l.Shape)
	case Exponential:
		v = m * r.ExpFloat64()
	case Edge:
		if r.IntN(4) == 0 {
			v = m + float64(l.Jitter)
		} else {
			v = m + (2*r.Float64()-1)*float64(l.Jitter)
		}
	}
	return clampNS(v, l.Max)
}

func clampNS(v float64, maxD time.Duration) int64 {
	if v < 0 || v != v {
		v = 0
	}
	if maxD > 0 && v > float64(maxD) {
		return int64(maxD)
	}
	if v > math.MaxInt64/4 {
		return math.MaxInt64 / 4
	}
	return int64(v)
}

// Loss is a packet-loss process. Burst ≤ 1 gives independent (Bernoulli)
// loss with probability Rate; Burst > 1 gives Gilbert–Elliott loss: a good
// state that loses nothing and a bad state that loses every packet, with
// long-run loss rate Rate and mean bad run Burst steps, so per step
// P(bad→good) = 1/Burst and P(good→bad) = Rate/(Burst·(1−Rate)).
//
// The chain steps once per Step of time (a packet slot of a busy flow),
// not once per packet: heartbeats are seconds apart, and a fade that eats
// four back-to-back packets must not eat four heartbeats spread over a
// minute. Between two transmissions the chain advances by the elapsed
// steps (at least one) in closed form.
type Loss struct {
	Rate  float64       // long-run fraction of packets lost, in [0, 1)
	Burst float64       // mean length of a loss burst in steps; ≤ 1 means independent
	Step  time.Duration // Gilbert–Elliott step; 0 means DefaultLossStep
}

// DefaultLossStep is the Gilbert–Elliott step: one packet of an
// interactive flow every 20 ms.
const DefaultLossStep = 20 * time.Millisecond

// Validate reports a loss process that cannot run.
func (l Loss) Validate() error {
	if l.Rate < 0 || l.Rate >= 1 || l.Rate != l.Rate {
		return fmt.Errorf("network: loss rate %g must be in [0, 1)", l.Rate)
	}
	if l.Burst < 0 || l.Burst != l.Burst {
		return fmt.Errorf("network: mean loss burst %g must not be negative (≤ 1 means independent loss)", l.Burst)
	}
	if l.Burst > 1 && l.Rate >= l.Burst/(l.Burst+1) {
		return fmt.Errorf("network: loss rate %g is too high for bursts of %g (the good state could not last a step); want a rate below %g", l.Rate, l.Burst, l.Burst/(l.Burst+1))
	}
	if l.Step < 0 {
		return fmt.Errorf("network: loss step %v must not be negative (0 means %v)", l.Step, DefaultLossStep)
	}
	return nil
}

// lost draws whether a packet transmitted at now is lost, advancing the
// direction's Gilbert–Elliott state.
func (l *Loss) lost(r *rand.Rand, st *State, now int64) bool {
	if l.Rate == 0 {
		return false
	}
	if l.Burst <= 1 {
		return r.Float64() < l.Rate
	}
	step := int64(l.Step)
	if step == 0 {
		step = int64(DefaultLossStep)
	}
	k := max((now-st.lastTx)/step, 1)
	st.lastTx = now
	q := 1 / l.Burst
	p := l.Rate * q / (1 - l.Rate)
	decay := math.Pow(1-p-q, float64(k))
	pb := l.Rate - l.Rate*decay // P(bad) after k steps from good
	if st.bad {
		pb = l.Rate + (1-l.Rate)*decay
	}
	st.bad = r.Float64() < pb
	return st.bad
}
