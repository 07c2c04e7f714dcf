package policy

import (
	"math"
	"sync"
	"time"
)

// Bounds and defaults of the fleet's advice.
const (
	// MinAdvice and MaxAdvice bound any dead-timeout advice a detector
	// believes, wherever it comes from (a Fleet or a server's heartbeat):
	// advice below MinAdvice is ignored (a hostile peer cannot make
	// detection instant: the detector's own timeouts still apply), above
	// MaxAdvice it is clamped (nor unbounded). A detector clamps further to
	// its own detection bound (Adaptive: Interval + MaxTolerance).
	MinAdvice = time.Second
	MaxAdvice = 10 * time.Minute
	// DefaultFleetRate is the rate, per connection-day, at which live
	// silences may exceed the advised dead timeout: the false dead verdicts
	// the advice alone would allow.
	DefaultFleetRate = 0.02
	// DefaultFleetThreshold is the rate per connection-day of the silences
	// whose excess the advice extrapolates from: common enough to be seen
	// below any dead timeout in use (which hides the longer ones).
	DefaultFleetThreshold = 20.0
	// DefaultFleetSpread is λ0/λ2: the tail is fitted through the
	// silences exceeded Threshold and Threshold/8 times per
	// connection-day.
	DefaultFleetSpread = 8.0
	// DefaultFleetHalfLife is how long an observation takes to lose half
	// its weight: the fleet forgets the weather of yesterday.
	DefaultFleetHalfLife = 6 * time.Hour
	// DefaultFleetMinTime is the connection time (the sum of the observed
	// silences, weighted) the fleet must have seen before it advises.
	DefaultFleetMinTime = 6 * time.Hour
	// DefaultFleetClasses bounds the classes a Fleet keeps apart; silences
	// of further classes are pooled with the unclassified ones ("").
	DefaultFleetClasses = 16
	// DefaultFleetAdvicePeriod is how often a server repeats the fleet's
	// advice on a connection after its first ping: 2 bytes every 5 minutes
	// cost under 1 % of the sparsest preset's heartbeat bytes.
	DefaultFleetAdvicePeriod = 5 * time.Minute
)

// fleetBuckets is the histogram's size: log-linear buckets, 16 per octave
// (each at most 6.25 % wider than its lower edge), from fleetBase up to
// 2^17 times it: 7.8 ms to about 17 min.
const (
	fleetBuckets = 16 * 17
	fleetBase    = float64(time.Second) / 128
)

// Fleet learns what a live silence looks like across many connections of
// one server — the gap between two frames on a connection that did deliver
// the second, so the peer was alive throughout — and advises a dead timeout
// that such silences should exceed at most Rate times per connection-day.
//
// Estimate. Let Q(λ) be the silence the observed ones exceed λ times per
// connection-day (the connection time is the sum of the silences):
//
//	Q(λ): weight(silences > Q(λ)) = λ · (connection time observed) / 24 h
//
// Rate is far too rare to be seen directly, and it could not be: a silence
// longer than the dead timeout in use ends in a verdict, not in a frame, so
// the fleet never sees it. The advice extrapolates an exponential tail
// through two quantiles that are common enough to be seen below any dead
// timeout in use, x0 = Q(Threshold) and x2 = Q(Threshold/Spread):
//
//	advice = x0 + k·(x2 − x0),   k = ln(Threshold/Rate) / ln(Spread)
//
// clamped to [Min, Max], or 0 (no advice) until MinTime of connection time
// was observed. With the defaults (20 and 2.5 a day, Rate 0.02) k = 3.32.
// Observations are weighted by 2^(t/HalfLife), so old weather fades.
//
// Robustness. Only silences that ended in a frame are observed, each counts
// once whatever its length, and the advice rests on quantiles, never on a
// mean or a maximum: outliers (frozen laptops that wake up) rarer than
// ε < Threshold/Spread per connection-day can raise x2 at most to the
// ordinary silences' Q(Threshold/Spread − ε), so the advice to at most k
// times that (and 6.25 % of bucket resolution); and it never exceeds Max.
// docs/invariants.md (Q1–Q3) states the guarantees, package proptest
// checks them.
//
// Memory is one histogram per class (fleetBuckets float64 counters and as
// many sums, for the mean silence within each bucket: about 4.3 KiB), at
// most MaxClasses+1 of them. Observe is O(1); Advice scans the
// class's histogram when it changed. Methods are safe for concurrent use.
// The zero value is ready to use with the defaults.
type Fleet struct {
	// Rate is how often per connection-day a live silence may exceed the
	// advice. Zero means DefaultFleetRate; positive.
	Rate float64
	// Threshold is the rate per connection-day above which silences are
	// the tail the advice extrapolates from. Zero means
	// DefaultFleetThreshold; above Rate.
	Threshold float64
	// Spread is λ0/λ2, how much rarer the second silence the tail is fitted
	// through is than the first. Zero means DefaultFleetSpread; above 1
	// and below Threshold/Rate.
	Spread float64
	// HalfLife is an observation's half-life. Zero means
	// DefaultFleetHalfLife.
	HalfLife time.Duration
	// MinTime is the weighted connection time a class must have observed
	// before it advises. Zero means DefaultFleetMinTime.
	MinTime time.Duration
	// Min and Max clamp the advice. Zero means MinAdvice and MaxAdvice;
	// MinAdvice <= Min <= Max <= MaxAdvice.
	Min, Max time.Duration
	// MaxClasses bounds the classes kept apart. Zero means
	// DefaultFleetClasses.
	MaxClasses int

	mu      sync.Mutex
	classes map[string]*fleetClass
	origin  time.Time // the weights' time origin
}

// fleetClass is one class's decayed histogram of live silences.
type fleetClass struct {
	count  [fleetBuckets]float64
	sum    [fleetBuckets]float64 // weighted sum of each bucket's silences, in nanoseconds
	time   float64               // weighted sum of the silences, in nanoseconds
	last   float64               // the weight of the latest observation
	cached time.Duration
	dirty  bool
}

// Validate reports a configuration the estimator cannot honour.
func (f *Fleet) Validate() error {
	_, err := f.params()
	return err
}

type fleetParams struct {
	rate, threshold, halfLife, minTime float64
	spread                             float64
	lo, hi                             time.Duration
	classes                            int
}

func (f *Fleet) params() (fleetParams, error) {
	const name = "fleet"
	p := fleetParams{
		rate: orFloat(f.Rate, DefaultFleetRate), threshold: orFloat(f.Threshold, DefaultFleetThreshold), halfLife: float64(orDuration(f.HalfLife, DefaultFleetHalfLife)),
		minTime: float64(orDuration(f.MinTime, DefaultFleetMinTime)),
		lo:      orDuration(f.Min, MinAdvice), hi: orDuration(f.Max, MaxAdvice), classes: f.MaxClasses,
	}
	if p.classes == 0 {
		p.classes = DefaultFleetClasses
	}
	p.spread = orFloat(f.Spread, DefaultFleetSpread)
	switch {
	case !(p.rate > 0) || math.IsInf(p.rate, 0):
		return p, invalid(name, "rate %v must be positive and finite (zero means %v)", f.Rate, DefaultFleetRate)
	case !(p.threshold > p.rate) || math.IsInf(p.threshold, 0):
		return p, invalid(name, "threshold %v must be finite and above the rate %v (zero means %v)", f.Threshold, p.rate, DefaultFleetThreshold)
	case !(p.spread > 1) || !(p.spread < p.threshold/p.rate):
		return p, invalid(name, "spread %v must be above 1 and below threshold/rate = %v (zero means %v)", f.Spread, p.threshold/p.rate, DefaultFleetSpread)
	case f.HalfLife < 0 || f.MinTime < 0:
		return p, invalid(name, "half-life %v and min time %v must not be negative (zero means %v and %v)", f.HalfLife, f.MinTime, DefaultFleetHalfLife, DefaultFleetMinTime)
	case p.lo < MinAdvice || p.hi > MaxAdvice || p.lo > p.hi:
		return p, invalid(name, "bounds must satisfy %v <= min %v <= max %v <= %v", MinAdvice, p.lo, p.hi, MaxAdvice)
	case p.classes < 0:
		return p, invalid(name, "max classes %d must not be negative (zero means %d)", f.MaxClasses, DefaultFleetClasses)
	}
	return p, nil
}

// fleetBucket returns the bucket of a silence of d nanoseconds: the
// exponent and top four mantissa bits of d/fleetBase.
func fleetBucket(d float64) int {
	x := d / fleetBase
	if !(x >= 1) {
		return 0
	}
	b := math.Float64bits(x)
	i := int((b>>52)&0x7ff-1023)<<4 | int(b>>48&15)
	return min(i, fleetBuckets-1)
}

// fleetEdge returns the upper edge of bucket i, in nanoseconds.
func fleetEdge(i int) float64 {
	return fleetBase * math.Ldexp(1+float64(i&15+1)/16, i>>4)
}

// Observe records a live silence of class (the application's label, such
// as a platform or network type; "" for none) that ended at now. A
// silence that is not positive is ignored. An invalid configuration
// observes nothing.
func (f *Fleet) Observe(class string, now time.Time, silence time.Duration) {
	if silence <= 0 {
		return
	}
	p, err := f.params()
	if err != nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.class(class, p)
	if f.origin.IsZero() {
		f.origin = now
	}
	w := math.Exp2(float64(now.Sub(f.origin)) / p.halfLife)
	if w < 1e-100 {
		return // from long before the origin (a clock set back): no weight
	}
	if w > 1e100 {
		// Renormalize: move the origin to now and rescale every class, so
		// the weights stay finite however long the server runs.
		for _, k := range f.classes {
			for i := range k.count {
				k.count[i] /= w
				k.sum[i] /= w
			}
			k.time, k.last, k.dirty = k.time/w, k.last/w, true
		}
		f.origin, w = now, 1
	}
	s := float64(silence)
	b := fleetBucket(s)
	c.count[b] += w
	c.sum[b] += w * s
	c.time += w * s
	c.last = w
	c.dirty = true
}

// class returns the histogram of class, creating it while there is room;
// with no room the unclassified one.
func (f *Fleet) class(name string, p fleetParams) *fleetClass {
	if f.classes == nil {
		f.classes = make(map[string]*fleetClass)
	}
	if c, ok := f.classes[name]; ok {
		return c
	}
	if name != "" && len(f.classes) >= p.classes {
		name = ""
		if c, ok := f.classes[name]; ok {
			return c
		}
	}
	c := &fleetClass{}
	f.classes[name] = c
	return c
}

// Advice returns the dead timeout the fleet advises for a connection of
// class: a silence that live connections of the class exceed at most Rate
// times per connection-day, clamped to [Min, Max]; or 0 (no advice) while
// the class has seen less than MinTime of connection time. A class the
// fleet does not keep apart is advised from the unclassified silences.
func (f *Fleet) Advice(class string) time.Duration {
	p, err := f.params()
	if err != nil {
		return 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.classes[class]
	if !ok {
		if c, ok = f.classes[""]; !ok {
			return 0
		}
	}
	if c.dirty {
		c.cached, c.dirty = c.advice(p), false
	}
	return c.cached
}

func (c *fleetClass) advice(p fleetParams) time.Duration {
	// c.time is in the weights' units; the latest observation weighs
	// c.last, so c.time/c.last is the connection time seen, recent hours
	// counting fully and older ones fading.
	if c.last == 0 || c.time/c.last < p.minTime {
		return 0
	}
	perDay := c.time / float64(24*time.Hour) // weighted connection-days
	x0, x2 := c.quantile(p.threshold, perDay), c.quantile(p.threshold/p.spread, perDay)
	d := x0 + p.factor()*(x2-x0)
	return min(max(time.Duration(d), p.lo), p.hi)
}

// Extrapolation returns the tail rate λ2 = Threshold/Spread and the
// factor k = ln(Threshold/Rate)/ln(Spread) of the fit: the advice is
// x0 + k·(x2 − x0), where x0 and x2 are the silences exceeded Threshold
// and λ2 times per connection-day, so it never exceeds k·x2. Outliers
// that occur less than ε < λ2 times per connection-day can raise x2 at
// most to the ordinary silences' quantile at λ2 − ε (docs/invariants.md,
// FL2). An invalid configuration returns zeros.
func (f *Fleet) Extrapolation() (tailRate, factor float64) {
	p, err := f.params()
	if err != nil {
		return 0, 0
	}
	return p.threshold / p.spread, p.factor()
}

// factor is k = ln(Threshold/Rate)/ln(Spread).
func (p fleetParams) factor() float64 { return math.Log(p.threshold/p.rate) / math.Log(p.spread) }

// quantile returns the silence that the class's silences exceed rate
// times per connection-day (perDay weighted connection-days observed),
// interpolated linearly within its bucket; at most the top edge of the
// highest bucket holding a silence.
//
// Within the bucket the silences are taken as spread evenly over the
// widest span inside it that has their mean as its middle: a bucket is
// 6.25 % wide (2 s at Socket.IO's 25 s, gorilla's 54 s sit in [54, 56)),
// and a cadence's silences crowd at one point of it, so spreading them
// over the whole bucket would advise up to a bucket's width too much.
func (c *fleetClass) quantile(rate, perDay float64) float64 {
	allowed, n := rate*perDay, 0.0
	i := fleetBuckets - 1
	for ; i > 0 && n+c.count[i] <= allowed; i-- {
		n += c.count[i]
	}
	hi := fleetEdge(i)
	if i == 0 || c.count[i] == 0 {
		return hi
	}
	lo := fleetEdge(i - 1)
	if m := min(max(c.sum[i]/c.count[i], lo), hi); m-lo < hi-m {
		hi = 2*m - lo
	} else {
		lo = 2*m - hi
	}
	return hi - (allowed-n)/c.count[i]*(hi-lo)
}
