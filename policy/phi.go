package policy

import (
	"math"
	"math/bits"
	"time"
)

// Defaults of PhiAccrual, used where a field is zero: Akka cluster's
// (akka-cluster/src/main/resources/reference.conf), except the acceptable
// pause, whose zero means none (the akka preset sets Akka's 3 s).
const (
	DefaultPhiThreshold     = 8.0
	DefaultPhiWindow        = 1000
	DefaultPhiMinStdDev     = 100 * time.Millisecond
	DefaultPhiFirstInterval = time.Second
)

// Limits of PhiAccrual's settings.
const (
	maxPhiWindow  = 1 << 16
	maxPhiSample  = 30 * time.Minute // samples are stored as int32 microseconds
	minPhiLevel   = 0.1
	maxPhiLevel   = 100.0
	phiA, phiB    = 1.5976, 0.070566 // Akka's logistic approximation of the normal CDF
	phiSampleUnit = time.Microsecond
)

// PhiAccrual is the φ accrual failure detector of Hayashibara et al. (2004)
// as Akka computes it. It keeps a bounded window of the gaps between pieces
// of evidence and turns the current silence Δt into a suspicion level
//
//	y = (Δt − (μ + AcceptablePause)) / max(σ, MinStdDev)
//	e = exp(−y·(1.5976 + 0.070566·y²))
//	φ = −log10(e / (1 + e))
//
// where μ and σ are the window's mean and (population) standard deviation.
// The peer is suspect when φ reaches SuspectThreshold and dead when it
// reaches Threshold. Since φ only grows with Δt, Timeouts inverts it in
// closed form: φ = T means y·(1.5976 + 0.070566·y²) = ln(10^T − 1), a cubic
// with one real root (Cardano), so
//
//	timeout(T) = μ + AcceptablePause + y(T)·max(σ, MinStdDev).
//
// As in Akka, the window starts with two samples, FirstInterval ∓
// FirstInterval/4, and a gap that ends after the peer was already past
// Threshold is not added. Unlike Akka's heartbeat-only stream, the evidence
// here includes data frames: set MinSample to the idle ping interval when
// pings are idle-only, so that data does not shrink μ below the heartbeat
// gap (gaps shorter than MinSample are not added).
//
// The window is a ring of Window int32 microsecond samples allocated once,
// at the first use; its mean and variance are kept as exact integer sums, so
// Observe and Timeouts are O(1) and allocate nothing. Settings are read at
// every call, except Window, read once.
type PhiAccrual struct {
	// Threshold is φ at which the peer is dead, in [0.1, 100]. Zero means
	// DefaultPhiThreshold.
	Threshold float64
	// SuspectThreshold is φ at which the peer is suspect, in [0.1,
	// Threshold]. Zero means Threshold: Akka has a single verdict.
	SuspectThreshold float64
	// Window is how many gaps are kept, in [2, 65536]. Zero means
	// DefaultPhiWindow.
	Window int
	// MinStdDev is the least σ used. Zero means DefaultPhiMinStdDev.
	MinStdDev time.Duration
	// AcceptablePause is added to μ. Zero means none.
	AcceptablePause time.Duration
	// FirstInterval is the expected heartbeat interval that seeds the
	// window. Zero means DefaultPhiFirstInterval.
	FirstInterval time.Duration
	// MinSample: shorter gaps are not added. Zero adds all, as Akka does.
	MinSample time.Duration
	// MaxSample: longer gaps are added as MaxSample, which bounds the worst
	// case. Zero means 10·FirstInterval (at most 30 min); at least
	// 1.25·FirstInterval and at most 30 min.
	MaxSample time.Duration

	ring       []int32 // gaps in microseconds
	head, n    int     // oldest sample, sample count
	sum        int64
	sqHi, sqLo uint64 // 128-bit sum of squares
	last       time.Time
	roots      [2]phiRoot // cached y(level) for the two thresholds
}

// phiRoot caches phiInverse(level): thresholds rarely change, and the cube
// root costs more than the rest of Timeouts.
type phiRoot struct{ level, y float64 }

func (d *PhiAccrual) root(i int, level float64) float64 {
	if c := &d.roots[i]; c.level != level {
		c.level, c.y = level, phiInverse(level)
	}
	return d.roots[i].y
}

type phiParams struct {
	dead, suspect                    float64 // thresholds
	minStd, pause, first, minS, maxS float64 // nanoseconds
	window                           int
}

// NewPhiAccrual returns a validated φ accrual detector with Akka's
// defaults, declaring dead at φ = threshold (zero means 8).
func NewPhiAccrual(threshold float64) (*PhiAccrual, error) {
	d := &PhiAccrual{Threshold: threshold}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	return d, nil
}

// Validate reports a configuration the detector cannot honour.
func (d *PhiAccrual) Validate() error {
	_, err := d.params()
	return err
}

func (d *PhiAccrual) params() (phiParams, error) {
	const name = "phi accrual detector"
	t := orFloat(d.Threshold, DefaultPhiThreshold)
	if !(t >= minPhiLevel && t <= maxPhiLevel) {
		return phiParams{}, invalid(name, "threshold %v must be in [%v, %v] (zero means %v)", d.Threshold, minPhiLevel, maxPhiLevel, DefaultPhiThreshold)
	}
	s := orFloat(d.SuspectThreshold, t)
	if !(s >= minPhiLevel && s <= t) {
		return phiParams{}, invalid(name, "suspect threshold %v must be in [%v, threshold %v] (zero means the threshold)", d.SuspectThreshold, minPhiLevel, t)
	}
	w := d.Window
	if w == 0 {
		w = DefaultPhiWindow
	}
	if w < 2 || w > maxPhiWindow {
		return phiParams{}, invalid(name, "window %d must hold between 2 and %d samples (zero means %d)", d.Window, maxPhiWindow, DefaultPhiWindow)
	}
	if d.MinStdDev < 0 || d.AcceptablePause < 0 || d.FirstInterval < 0 || d.MinSample < 0 || d.MaxSample < 0 {
		return phiParams{}, invalid(name, "durations must not be negative (min std dev %v, pause %v, first interval %v, min sample %v, max sample %v)",
			d.MinStdDev, d.AcceptablePause, d.FirstInterval, d.MinSample, d.MaxSample)
	}
	first := orDuration(d.FirstInterval, DefaultPhiFirstInterval)
	maxS := d.MaxSample
	if maxS == 0 {
		maxS = min(10*first, maxPhiSample)
	}
	if maxS > maxPhiSample || maxS < first+first/4 {
		return phiParams{}, invalid(name, "max sample %v must be between 1.25 × the first interval (%v) and %v", maxS, first+first/4, maxPhiSample)
	}
	return phiParams{
		dead: t, suspect: s, window: w,
		minStd: float64(orDuration(d.MinStdDev, DefaultPhiMinStdDev)), pause: float64(d.AcceptablePause),
		first: float64(first), minS: float64(d.MinSample), maxS: float64(maxS),
	}, nil
}

// ensure allocates and seeds the window at the first use.
func (d *PhiAccrual) ensure(p phiParams) {
	if d.ring != nil {
		return
	}
	d.ring = make([]int32, p.window)
	std := p.first / 4
	d.push(p.first - std)
	d.push(p.first + std)
}

func (d *PhiAccrual) push(gapNs float64) {
	x := int64(gapNs / float64(phiSampleUnit))
	x = min(max(x, 0), math.MaxInt32)
	if d.n == len(d.ring) {
		d.drop(int64(d.ring[d.head]))
		d.head = (d.head + 1) % len(d.ring)
		d.n--
	}
	d.ring[(d.head+d.n)%len(d.ring)] = int32(x)
	d.n++
	d.sum += x
	var carry uint64
	d.sqLo, carry = bits.Add64(d.sqLo, uint64(x*x), 0)
	d.sqHi += carry
}

func (d *PhiAccrual) drop(x int64) {
	var borrow uint64
	d.sum -= x
	d.sqLo, borrow = bits.Sub64(d.sqLo, uint64(x*x), 0)
	d.sqHi -= borrow
}

// stats returns the window's mean and population standard deviation, in
// nanoseconds.
func (d *PhiAccrual) stats() (mean, std float64) {
	n := float64(d.n)
	m := float64(d.sum) / n
	sq := (float64(d.sqHi)*(1<<64) + float64(d.sqLo)) / n
	v := max(sq-m*m, 0)
	u := float64(phiSampleUnit)
	return m * u, math.Sqrt(v) * u
}

// Start records the connect as the last evidence; the window is kept.
func (d *PhiAccrual) Start(now time.Time) {
	if p, err := d.params(); err == nil {
		d.ensure(p)
	}
	d.last = now
}

// Observe adds the gap since the last evidence to the window, unless it is
// shorter than MinSample or the peer was already past Threshold.
func (d *PhiAccrual) Observe(now time.Time, _ time.Duration) {
	p, err := d.params()
	if err != nil {
		return
	}
	d.ensure(p)
	if !d.last.IsZero() {
		gap := float64(now.Sub(d.last))
		if _, dead := d.timeouts(p); gap >= p.minS && gap < dead {
			d.push(min(gap, p.maxS))
		}
	}
	d.last = now
}

// Timeouts returns the silences at which φ reaches SuspectThreshold and
// Threshold. An invalid configuration returns zeros, which the Machine
// rejects.
func (d *PhiAccrual) Timeouts() (suspect, dead time.Duration) {
	p, err := d.params()
	if err != nil {
		return 0, 0
	}
	d.ensure(p)
	s, t := d.timeouts(p)
	return time.Duration(s), time.Duration(t)
}

func (d *PhiAccrual) timeouts(p phiParams) (suspect, dead float64) {
	mean, std := d.stats()
	std = max(std, p.minStd)
	base := mean + p.pause
	suspect = max(base+d.root(0, p.suspect)*std, float64(time.Millisecond))
	dead = max(base+d.root(1, p.dead)*std, suspect)
	return suspect, dead
}

// Phi returns the suspicion level φ after silence since the last evidence,
// from the current window (Akka's formula).
func (d *PhiAccrual) Phi(silence time.Duration) float64 {
	p, err := d.params()
	if err != nil {
		return math.NaN()
	}
	d.ensure(p)
	mean, std := d.stats()
	return phiOf(float64(silence), mean+p.pause, max(std, p.minStd))
}

// phiOf is Akka's φ for a silence of dt given mean and stdDev (nanoseconds).
func phiOf(dt, mean, stdDev float64) float64 {
	y := (dt - mean) / stdDev
	e := math.Exp(-y * (phiA + phiB*y*y))
	if dt > mean {
		return -math.Log10(e / (1 + e))
	}
	return -math.Log10(1 - 1/(1+e))
}

// phiInverse returns the y at which φ equals level: the real root of
// phiB·y³ + phiA·y − c = 0 with c = ln(10^level − 1).
func phiInverse(level float64) float64 {
	c := level*math.Ln10 + math.Log1p(-math.Pow(10, -level))
	p, q := phiA/phiB, -c/phiB
	s := math.Sqrt(q*q/4 + p*p*p/27)
	return math.Cbrt(-q/2+s) + math.Cbrt(-q/2-s)
}

// DetectionBound returns nb.MaxRTT plus the largest dead timeout the window
// can produce: every sample is at most MaxSample M, so μ <= M and σ <= M/2,
// giving M + AcceptablePause + y(Threshold)·max(MinStdDev, M/2). It promises
// accuracy only if the least dead timeout, min(FirstInterval, MinSample) +
// AcceptablePause + y(Threshold)·MinStdDev, exceeds nb.Gap(): every sample
// is at least MinSample, and the two seeds average FirstInterval.
func (d *PhiAccrual) DetectionBound(nb NetworkBound) (time.Duration, error) {
	if err := nb.validate(); err != nil {
		return 0, err
	}
	p, err := d.params()
	if err != nil {
		return 0, err
	}
	y := phiInverse(p.dead)
	lo, hi := p.minStd, max(p.minStd, p.maxS/2) // the range of max(σ, MinStdDev)
	if y < 0 {
		lo, hi = hi, lo
	}
	// Samples are truncated to whole microseconds: allow one.
	least := min(p.first, p.minS) - float64(phiSampleUnit) + p.pause + y*lo
	if time.Duration(least) <= nb.Gap() {
		return 0, noBound("phi accrual detector", time.Duration(least), nb)
	}
	worst := max(p.maxS+p.pause+y*hi, float64(time.Millisecond))
	return nb.MaxRTT + time.Duration(worst), nil
}
