package policy_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/heartbeat-go/heartbeat/policy"
)

// fixedSource makes every Float64 draw return the same quantile.
type fixedSource uint64

func (s fixedSource) Uint64() uint64 { return uint64(s) }

// quantile returns a *rand.Rand whose Float64 always returns u (u in [0, 1)).
func quantile(u float64) *rand.Rand { return rand.New(fixedSource(uint64(u * (1 << 53)))) }

func seeded(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)) }

// step is one call to Next: the retry and the expected delay, or a give-up.
type step struct {
	r      policy.Retry
	want   time.Duration
	gaveUp bool
}

// attempts builds steps for dials 1, 2, … with the given delays.
func attempts(want ...time.Duration) []step {
	s := make([]step, len(want))
	for i, w := range want {
		s[i] = step{r: policy.Retry{Attempt: i + 1}, want: w}
	}
	return s
}

// TestBackoffFormulas checks every backoff against delays computed by hand
// from its documented formula, with the random draw pinned to a quantile.
func TestBackoffFormulas(t *testing.T) {
	cases := []struct {
		name  string
		b     policy.Backoff
		steps []step
	}{
		{"constant", &policy.Constant{Delay: sec, MaxAttempts: 2},
			append(attempts(sec, sec), step{r: policy.Retry{Attempt: 3}, gaveUp: true})},
		{"exponential", &policy.Exponential{Base: sec, Max: 10 * sec, Multiplier: 2},
			attempts(sec, 2*sec, 4*sec, 8*sec, 10*sec, 10*sec)},
		{"exponential ×1.3", &policy.Exponential{Base: 2 * sec, Max: 10 * sec, Multiplier: 1.3},
			attempts(2*sec, 2600*ms, 3380*ms, 4394*ms, 5712200*time.Microsecond)},
		// socket.io: 1 s·2ⁿ⁻¹·f, f at the low end (0.5) and at 1.25.
		{"exponential jitter low", &policy.Exponential{Base: sec, Max: 5 * sec, Multiplier: 2, Jitter: 0.5, Rand: quantile(0)},
			attempts(500*ms, sec, 2*sec, 4*sec, 5*sec)},
		{"exponential jitter high", &policy.Exponential{Base: sec, Max: 5 * sec, Multiplier: 2, Jitter: 0.5, Rand: quantile(0.75)},
			attempts(1250*ms, 2500*ms, 5*sec, 5*sec)},
		{"full jitter", &policy.FullJitter{Rand: quantile(0.5)},
			attempts(500*ms, sec, 2*sec, 4*sec, 8*sec, 15*sec, 15*sec)},
		{"full jitter with min", &policy.FullJitter{Base: 200 * ms, Cap: 20 * sec, Min: 200 * ms, Rand: quantile(0.5)},
			attempts(200*ms, 300*ms, 500*ms, 900*ms)},
		{"equal jitter", &policy.EqualJitter{Rand: quantile(0.5)},
			attempts(750*ms, 1500*ms, 3*sec, 6*sec, 12*sec, 22500*ms)},
		// sleep = min(10, U(1, 3·sleep)) at the midpoint: 2, 3.5, 5.75, 9.125, 10.
		{"decorrelated", &policy.Decorrelated{Base: sec, Cap: 10 * sec, Rand: quantile(0.5)},
			append(attempts(2*sec, 3500*ms, 5750*ms, 9125*ms, 10*sec, 10*sec),
				step{r: policy.Retry{Attempt: 1}, want: 2 * sec})}, // starts over
		{"grpc mid", &policy.GRPC{Rand: quantile(0.5)},
			attempts(0, sec, 1600*ms, 2560*ms, 4096*ms)},
		{"grpc low", &policy.GRPC{Rand: quantile(0)},
			attempts(0, sec, 1280*ms, 2048*ms)},
		{"grpc cap", &policy.GRPC{Max: 2 * sec, Rand: quantile(0.999999)},
			[]step{{r: policy.Retry{Attempt: 30}, want: 2399999 * time.Microsecond}}},
		{"table phoenix", &policy.Table{Delays: []time.Duration{10 * ms, 50 * ms, 5 * sec}, Repeat: true},
			attempts(10*ms, 50*ms, 5*sec, 5*sec, 5*sec)},
		{"table signalr", &policy.Table{Delays: []time.Duration{0, 2 * sec}},
			append(attempts(0, 2*sec), step{r: policy.Retry{Attempt: 3}, gaveUp: true})},
		{"advised", &policy.Advised{Rand: quantile(0.5)}, []step{
			{r: policy.Retry{Attempt: 1, Advice: 10 * sec}, want: 5 * sec},
			{r: policy.Retry{Attempt: 1, Elapsed: 2 * sec, Advice: 10 * sec}, want: 3 * sec},
			{r: policy.Retry{Attempt: 1, Elapsed: 7 * sec, Advice: 10 * sec}, want: 0},
			{r: policy.Retry{Attempt: 2, Elapsed: 6 * sec, Advice: 10 * sec}, want: 500 * ms}, // fallback's dial 1
			{r: policy.Retry{Attempt: 3, Elapsed: 7 * sec, Advice: 10 * sec}, want: sec},
			{r: policy.Retry{Attempt: 1}, want: 500 * ms},                           // no advice: the fallback
			{r: policy.Retry{Attempt: 1, Advice: time.Hour}, want: 5 * time.Minute}, // capped at 10 min
		}},
		{"advised table fallback", &policy.Advised{Rand: quantile(0.25), Fallback: &policy.Table{Delays: []time.Duration{sec, 2 * sec}}}, []step{
			{r: policy.Retry{Attempt: 1, Advice: 8 * sec}, want: 2 * sec},
			{r: policy.Retry{Attempt: 3, Advice: 8 * sec}, want: 2 * sec},
			{r: policy.Retry{Attempt: 3}, gaveUp: true},
		}},
		{"limit", &policy.Limit{Backoff: &policy.Constant{Delay: 4 * sec}, MaxAttempts: 3, MaxElapsed: 10 * sec}, []step{
			{r: policy.Retry{Attempt: 1}, want: 4 * sec},
			{r: policy.Retry{Attempt: 2, Elapsed: 6 * sec}, want: 4 * sec},
			{r: policy.Retry{Attempt: 3, Elapsed: 7 * sec}, gaveUp: true}, // 7 + 4 > 10
			{r: policy.Retry{Attempt: 4, Elapsed: sec}, gaveUp: true},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for i, s := range tc.steps {
				got, err := tc.b.Next(s.r)
				if s.gaveUp {
					var g *policy.GaveUpError
					if !errors.As(err, &g) || !errors.Is(err, policy.ErrGaveUp) || g.Cause != nil {
						t.Fatalf("step %d %+v: (%v, %v), want a limit reached", i, s.r, got, err)
					}
					continue
				}
				if err != nil || (got-s.want).Abs() > time.Microsecond {
					t.Fatalf("step %d %+v: (%v, %v), want %v", i, s.r, got, err, s.want)
				}
			}
		})
	}
}

// envelope is a backoff with the bounds its documentation states for dial n.
type envelope struct {
	name   string
	make   func(r *rand.Rand) policy.Backoff
	lo, hi func(n int) time.Duration
}

func pow(base time.Duration, m float64, n int) float64 {
	return float64(base) * math.Pow(m, float64(n-1))
}

func capped(v float64, c time.Duration) time.Duration { return time.Duration(min(v, float64(c))) }

var envelopes = []envelope{
	{"exponential jitter",
		func(r *rand.Rand) policy.Backoff {
			return &policy.Exponential{Base: sec, Max: 5 * sec, Multiplier: 2, Jitter: 0.5, Rand: r}
		},
		func(n int) time.Duration { return capped(0.5*pow(sec, 2, n), 5*sec) },
		func(n int) time.Duration { return capped(1.5*pow(sec, 2, n), 5*sec) }},
	{"full jitter",
		func(r *rand.Rand) policy.Backoff { return &policy.FullJitter{Base: sec, Cap: 30 * sec, Rand: r} },
		func(int) time.Duration { return 0 },
		func(n int) time.Duration { return capped(pow(sec, 2, n), 30*sec) }},
	{"full jitter min",
		func(r *rand.Rand) policy.Backoff {
			return &policy.FullJitter{Base: 200 * ms, Cap: 20 * sec, Min: 200 * ms, Rand: r}
		},
		func(int) time.Duration { return 200 * ms },
		func(n int) time.Duration { return capped(pow(200*ms, 2, n), 20*sec) }},
	{"equal jitter",
		func(r *rand.Rand) policy.Backoff { return &policy.EqualJitter{Base: sec, Cap: 30 * sec, Rand: r} },
		func(n int) time.Duration { return capped(pow(sec, 2, n), 30*sec) / 2 },
		func(n int) time.Duration { return capped(pow(sec, 2, n), 30*sec) }},
	{"decorrelated",
		func(r *rand.Rand) policy.Backoff { return &policy.Decorrelated{Base: sec, Cap: 30 * sec, Rand: r} },
		func(int) time.Duration { return sec },
		func(n int) time.Duration { return capped(pow(sec, 3, n+1), 30*sec) }},
	{"grpc",
		func(r *rand.Rand) policy.Backoff { return &policy.GRPC{Rand: r} },
		func(n int) time.Duration {
			if n == 1 {
				return 0
			}
			return time.Duration(0.8 * float64(capped(pow(sec, 1.6, n-1), 120*sec)))
		},
		func(n int) time.Duration {
			if n == 1 {
				return 0
			}
			return time.Duration(1.2 * float64(capped(pow(sec, 1.6, n-1), 120*sec)))
		}},
	{"advised",
		func(r *rand.Rand) policy.Backoff { return &policy.Advised{Rand: r} },
		func(int) time.Duration { return 0 },
		func(n int) time.Duration {
			if n == 1 {
				return 10 * sec // the advice
			}
			return capped(pow(sec, 2, n-1), 30*sec)
		}},
}

// TestBackoffEnvelopes draws many delays from seeded sources and checks
// each against the stated envelope.
func TestBackoffEnvelopes(t *testing.T) {
	for _, e := range envelopes {
		t.Run(e.name, func(t *testing.T) {
			for seed := range uint64(50) {
				b := e.make(seeded(seed))
				for n := 1; n <= 40; n++ {
					d, err := b.Next(policy.Retry{Attempt: n, Advice: 10 * sec})
					if err != nil {
						t.Fatal(err)
					}
					if lo, hi := e.lo(n), e.hi(n); d < lo || d > hi {
						t.Fatalf("seed %d dial %d: %v outside [%v, %v]", seed, n, d, lo, hi)
					}
				}
			}
		})
	}
}

// TestBackoffReplays: the same seed gives the same delays; another seed
// gives others.
func TestBackoffReplays(t *testing.T) {
	run := func(e envelope, seed uint64) string {
		b := e.make(seeded(seed))
		var sb strings.Builder
		for i := range 60 {
			d, _ := b.Next(policy.Retry{Attempt: i%20 + 1, Advice: 10 * sec})
			fmt.Fprint(&sb, d, " ")
		}
		return sb.String()
	}
	for _, e := range envelopes {
		a, b, c := run(e, 7), run(e, 7), run(e, 8)
		if a != b {
			t.Errorf("%s: seed 7 did not replay:\n%s\n%s", e.name, a, b)
		}
		if a == c {
			t.Errorf("%s: seeds 7 and 8 drew the same delays", e.name)
		}
	}
}

// TestBackoffSpreads: the mean of many first delays is where the formula
// puts it (a backoff that ignored its random source would fail this).
func TestBackoffSpreads(t *testing.T) {
	r := seeded(1)
	cases := []struct {
		b    policy.Backoff
		n    int
		mean time.Duration
	}{
		{&policy.FullJitter{Rand: r}, 4, 4 * sec},   // U(0, 8 s)
		{&policy.EqualJitter{Rand: r}, 4, 6 * sec},  // 4 s + U(0, 4 s)
		{&policy.Decorrelated{Rand: r}, 1, 2 * sec}, // U(1 s, 3 s)
		{&policy.Advised{Rand: r}, 1, 5 * sec},      // U(0, 10 s)
		{&policy.GRPC{Rand: r}, 3, 1600 * ms},       // 1.6 s ± 20 %
	}
	for _, tc := range cases {
		var sum float64
		const draws = 4000
		for range draws {
			d, _ := tc.b.Next(policy.Retry{Attempt: tc.n, Advice: 10 * sec})
			sum += float64(d)
		}
		if got := time.Duration(sum / draws); (got - tc.mean).Abs() > tc.mean/20 {
			t.Errorf("%T: mean %v, want %v ± 5%%", tc.b, got, tc.mean)
		}
	}
}

func TestBackoffValidation(t *testing.T) {
	r := seeded(1)
	bad := []struct {
		b    policy.Backoff
		want string
	}{
		{&policy.Constant{Delay: -sec}, "negative"},
		{&policy.Constant{MaxAttempts: -1}, "max attempts"},
		{&policy.Exponential{Base: -sec, Multiplier: 2}, "base"},
		{&policy.Exponential{Base: 10 * sec, Max: sec, Multiplier: 2}, "base"},
		{&policy.Exponential{Multiplier: 0}, "multiplier"},
		{&policy.Exponential{Multiplier: 0.5}, "multiplier"},
		{&policy.Exponential{Multiplier: 2, Jitter: 1.5, Rand: r}, "jitter"},
		{&policy.Exponential{Multiplier: 2, Jitter: -0.1, Rand: r}, "jitter"},
		{&policy.Exponential{Multiplier: 2, Jitter: 0.5}, "random source"},
		{&policy.FullJitter{Rand: r, Min: time.Minute}, "min"},
		{&policy.FullJitter{}, "random source"},
		{&policy.EqualJitter{Rand: r, Cap: -sec}, "cap"},
		{&policy.Decorrelated{Rand: r, Base: time.Minute}, "cap"},
		{&policy.GRPC{Rand: r, Multiplier: 0.9}, "multiplier"},
		{&policy.GRPC{Rand: r, Jitter: 2}, "jitter"},
		{&policy.GRPC{}, "random source"},
		{&policy.Table{}, "at least one delay"},
		{&policy.Table{Delays: []time.Duration{sec, -sec}}, "negative"},
		{&policy.Limit{}, "needs a backoff"},
		{&policy.Limit{Backoff: &policy.Constant{}, MaxElapsed: -sec}, "negative"},
		{&policy.Advised{}, "random source"},
		{&policy.Advised{Rand: r, MaxWindow: -sec}, "max window"},
		{&policy.Advised{Rand: r, Fallback: &policy.FullJitter{}}, "random source"},
	}
	for _, tc := range bad {
		err := tc.b.(policy.Validator).Validate()
		if !errors.Is(err, policy.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%T %+v: error %v, want one about %q", tc.b, tc.b, err, tc.want)
		}
		// Next refuses too: the Machine closes with the reason.
		_, err = tc.b.Next(policy.Retry{Attempt: 1, Advice: sec})
		var g *policy.GaveUpError
		if !errors.As(err, &g) || !errors.Is(g.Cause, policy.ErrInvalidConfig) {
			t.Errorf("%T %+v: Next error %v, want a GaveUpError caused by the configuration", tc.b, tc.b, err)
		}
	}
}
