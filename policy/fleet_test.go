package policy_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/heartbeat-go/heartbeat/policy"
)

// feed observes n silences of class drawn from draw, all ending at now.
func feed(f *policy.Fleet, class string, now time.Time, n int, draw func() time.Duration) {
	for range n {
		f.Observe(class, now, draw())
	}
}

// mobileLike draws the silences of a 5 s heartbeat on a link whose
// handovers stretch a silence by an exponential excess (mean 2 s) 72
// times a day.
func mobileLike(r *rand.Rand) func() time.Duration {
	return func() time.Duration {
		d := 5*sec + time.Duration(r.IntN(200))*ms
		if r.IntN(17280/72) == 0 {
			d += time.Duration(r.ExpFloat64() * float64(2*sec))
		}
		return d
	}
}

func TestFleetNoAdviceBeforeMinTime(t *testing.T) {
	f := &policy.Fleet{MinTime: time.Hour}
	if got := f.Advice(""); got != 0 {
		t.Fatalf("an empty fleet advised %v", got)
	}
	feed(f, "", t0, 700, func() time.Duration { return 5 * sec }) // 58 min
	if got := f.Advice(""); got != 0 {
		t.Fatalf("after 58 min of connection time (MinTime 1h) the fleet advised %v", got)
	}
	feed(f, "", t0, 30, func() time.Duration { return 5 * sec })
	if got := f.Advice(""); got < policy.MinAdvice || got > policy.MaxAdvice {
		t.Fatalf("after an hour the advice %v is outside [%v, %v]", got, policy.MinAdvice, policy.MaxAdvice)
	}
}

// The advice extrapolates the tail: it lies beyond the silences seen
// Threshold/Spread times a day, and within k times them.
func TestFleetExtrapolatesTheTail(t *testing.T) {
	f := &policy.Fleet{}
	r := rand.New(rand.NewPCG(1, 2))
	feed(f, "", t0, 17280*40, mobileLike(r)) // 40 connection-days
	got := f.Advice("")
	// An exponential excess of mean 2 s at 72 a day exceeds x about
	// 72·e^(−x/2 s) times a day: 0.02 a day at 5 s + 16.4 s.
	if got < 18*sec || got > 26*sec {
		t.Fatalf("advice %v, want about 21.4 s (18 to 26 s)", got)
	}
	t.Logf("advice %v", got)
}

// A sparse cadence's silences crowd at one point of a bucket 6.25 % wide:
// gorilla's 54 s pings answered within 80-200 ms on a steady link are all
// in [54 s, 56 s). The advice must follow the silences, not the bucket's
// upper edge, or it tolerates 2 s of lateness the fleet never saw.
func TestFleetAdviceWithinABucket(t *testing.T) {
	for _, iv := range []time.Duration{5 * sec, 25 * sec, 30 * sec, 54 * sec} {
		f := &policy.Fleet{}
		r := rand.New(rand.NewPCG(5, uint64(iv)))
		n := int(40 * 24 * time.Hour / iv) // 40 connection-days
		feed(f, "", t0, n, func() time.Duration { return iv + 80*ms + time.Duration(r.IntN(120))*ms })
		// 1.5 % of the cadence: a quarter of a bucket.
		if got, want := f.Advice(""), iv+200*ms+iv*3/200; got > want {
			t.Errorf("silences of %v + 80-200 ms: advice %v, want at most %v", iv, got, want)
		}
	}
}

// A few frozen laptops, each silent for an hour, rarer than the tail rate,
// barely move the advice; a fleet that takes the maximum would be ruined.
func TestFleetIgnoresAMinorityOfHugeSilences(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	clean, dirty := &policy.Fleet{}, &policy.Fleet{}
	draw := mobileLike(r)
	for range 17280 * 20 {
		d := draw()
		clean.Observe("", t0, d)
		dirty.Observe("", t0, d)
	}
	for range 20 { // one a day: under the tail rate, 2.5 a day
		dirty.Observe("", t0, time.Hour)
	}
	c, d := clean.Advice(""), dirty.Advice("")
	if d > c+c/5 {
		t.Fatalf("20 hour-long silences in 20 connection-days raised the advice from %v to %v", c, d)
	}
	t.Logf("advice %v without, %v with the frozen laptops", c, d)
}

func TestFleetAdviceWithinBounds(t *testing.T) {
	f := &policy.Fleet{Min: 2 * sec, Max: 30 * sec, MinTime: time.Minute}
	feed(f, "", t0, 100, func() time.Duration { return 10 * time.Millisecond })
	feed(f, "", t0, 10000, func() time.Duration { return 10 * time.Millisecond })
	if got := f.Advice(""); got != 2*sec {
		t.Fatalf("short silences: advice %v, want the floor 2s", got)
	}
	f = &policy.Fleet{Min: 2 * sec, Max: 30 * sec, MinTime: time.Minute}
	feed(f, "", t0, 1000, func() time.Duration { return 5 * time.Minute })
	if got := f.Advice(""); got != 30*sec {
		t.Fatalf("huge silences: advice %v, want the cap 30s", got)
	}
}

func TestFleetClasses(t *testing.T) {
	f := &policy.Fleet{MaxClasses: 2, MinTime: time.Hour}
	feed(f, "wifi", t0, 2000, func() time.Duration { return 5 * sec })
	feed(f, "cell", t0, 2000, func() time.Duration { return 20 * sec })
	w, c := f.Advice("wifi"), f.Advice("cell")
	if !(w < c) {
		t.Fatalf("wifi advice %v, cell %v: the classes were not kept apart", w, c)
	}
	// A third class is pooled with the unclassified silences.
	feed(f, "sat", t0, 2000, func() time.Duration { return 40 * sec })
	if got, un := f.Advice("sat"), f.Advice(""); got != un || got == 0 {
		t.Fatalf("a class beyond MaxClasses advised %v, the unclassified %v: want the same, non-zero", got, un)
	}
	if got := f.Advice("unknown"); got != f.Advice("") {
		t.Fatalf("an unseen class advised %v, want the unclassified %v", got, f.Advice(""))
	}
}

// Old weather fades: a day after the long silences stopped, the advice
// follows the short ones.
func TestFleetForgets(t *testing.T) {
	f := &policy.Fleet{HalfLife: time.Hour, MinTime: time.Hour}
	feed(f, "", t0, 20000, func() time.Duration { return 20 * sec })
	before := f.Advice("")
	feed(f, "", t0.Add(24*time.Hour), 20000, func() time.Duration { return 5 * sec })
	after := f.Advice("")
	if !(after < before/2) {
		t.Fatalf("advice %v before, %v a day (24 half-lives) later: the old silences did not fade", before, after)
	}
	// Weights stay finite over years (renormalized).
	feed(f, "", t0.Add(24*365*time.Hour), 20000, func() time.Duration { return 5 * sec })
	if got := f.Advice(""); got < after-time.Microsecond || got > after+time.Microsecond {
		t.Fatalf("a year later the same silences advise %v, want %v", got, after)
	}
}

// A clock set back by years, or forward by centuries, leaves the advice
// finite and within bounds.
func TestFleetClockJumps(t *testing.T) {
	f := &policy.Fleet{HalfLife: time.Minute, MinTime: time.Minute}
	feed(f, "", t0, 1000, func() time.Duration { return 5 * sec })
	want := f.Advice("")
	feed(f, "", t0.Add(-10*365*24*time.Hour), 1000, func() time.Duration { return time.Hour })
	if got := f.Advice(""); got != want {
		t.Fatalf("silences from ten years before changed the advice from %v to %v", want, got)
	}
	feed(f, "", t0.Add(200*365*24*time.Hour), 1000, func() time.Duration { return 20 * sec })
	if got := f.Advice(""); got < 20*sec || got > 22*sec {
		t.Fatalf("two centuries later, 20 s silences advise %v", got)
	}
}

func TestFleetValidate(t *testing.T) {
	for _, f := range []*policy.Fleet{
		{Rate: -1}, {Threshold: 0.01}, {Spread: 0.5}, {Spread: 5000}, {HalfLife: -1},
		{Min: time.Millisecond}, {Max: time.Hour}, {Min: time.Minute, Max: 2 * sec}, {MaxClasses: -1},
	} {
		err := f.Validate()
		var ce *policy.ConfigError
		if !errors.Is(err, policy.ErrInvalidConfig) || !errors.As(err, &ce) {
			t.Errorf("%+v: Validate = %v, want a *ConfigError", f, err)
		}
		f.Observe("", t0, time.Hour) // no panic, nothing learned
		if got := f.Advice(""); got != 0 {
			t.Errorf("%+v: an invalid fleet advised %v", f, got)
		}
	}
	if err := (&policy.Fleet{}).Validate(); err != nil {
		t.Fatal(err)
	}
	if r, k := (&policy.Fleet{}).Extrapolation(); r != 2.5 || k < 3.3 || k > 3.33 {
		t.Fatalf("default extrapolation: tail rate %v, factor %v; want 2.5 and ln(1000)/ln(8) ≈ 3.32", r, k)
	}
}

func TestFleetConcurrent(t *testing.T) {
	f := &policy.Fleet{MinTime: time.Minute}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				f.Observe(fmt.Sprint(g), t0.Add(time.Duration(i)*ms), 5*sec)
				_ = f.Advice(fmt.Sprint(g))
			}
		})
	}
	wg.Wait()
	if f.Advice("1") == 0 {
		t.Fatal("no advice after 2000 silences per class")
	}
}

// The advice raises the Adaptive detector's dead timeout on a connection
// with no history of its own, never past its detection bound, and advice
// below MinAdvice is none.
func TestAdaptiveAdvise(t *testing.T) {
	a := &policy.Adaptive{}
	a.Start(t0)
	_, dead0 := a.Timeouts()
	a.Advise(18 * sec)
	if _, dead := a.Timeouts(); dead != 18*sec {
		t.Fatalf("advised 18s: dead %v (unadvised %v)", dead, dead0)
	}
	a.Advise(time.Hour) // hostile: clamped to Interval + MaxTolerance
	if _, dead := a.Timeouts(); dead != 35*sec {
		t.Fatalf("advised an hour: dead %v, want the cap 5s + 30s", dead)
	}
	a.Advise(time.Millisecond) // hostile the other way: no advice
	if _, dead := a.Timeouts(); dead != dead0 {
		t.Fatalf("advised 1ms: dead %v, want the unadvised %v", dead, dead0)
	}
	a.Advise(2 * sec) // below what it would wait anyway: no effect
	if _, dead := a.Timeouts(); dead != dead0 {
		t.Fatalf("advised 2s: dead %v, want the unadvised %v", dead, dead0)
	}
}

// BenchmarkFleetObserve measures one observation (the hub's cost per
// inbound frame); BenchmarkFleetAdvice one advice after a change (the cost
// per new connection). Memory per class is reported as B/class.
func BenchmarkFleetObserve(b *testing.B) {
	f := &policy.Fleet{}
	now := t0
	b.ReportAllocs()
	for i := range b.N {
		now = now.Add(5 * sec)
		f.Observe("", now, 5*sec+time.Duration(i%4096)*ms)
	}
}

func BenchmarkFleetAdvice(b *testing.B) {
	f := &policy.Fleet{MinTime: time.Minute}
	r := rand.New(rand.NewPCG(1, 2))
	feed(f, "", t0, 100000, mobileLike(r))
	var sink time.Duration
	b.ReportAllocs()
	for i := range b.N {
		f.Observe("", t0, 5*sec+time.Duration(i%64)*ms) // invalidates the cache
		sink += f.Advice("")
	}
	if sink == 0 {
		b.Fatal("no advice")
	}
}

// BenchmarkFleetClass measures the memory of a fleet with one class
// (B/op): the histogram and the map that holds it.
func BenchmarkFleetClass(b *testing.B) {
	b.ReportAllocs()
	for range b.N {
		f := &policy.Fleet{}
		f.Observe("", t0, sec)
	}
}
