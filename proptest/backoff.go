package proptest

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/heartbeat-go/heartbeat/policy"
)

// backoffFunc returns a fresh backoff for one connection, drawing all its
// randomness from r.
type backoffFunc = func(r *rand.Rand) policy.Backoff

// CheckBackoff checks a reconnect backoff against what it promises: delay
// bounds (B1), an envelope that never shrinks before a reset (B2), attempt
// and time limits with a policy.ErrGaveUp error (B3, B4), a reset that
// restarts the schedule (B5), replay from a seed (B6) and the spreading of
// a reconnect storm (B7, see CheckStorm). It calls Next directly, with the
// attempts numbered as the Machine numbers them; CheckMachine checks the
// Machine's side (B8).
//
// A failure reports the invariant, rapid's minimal counter-example and the
// flag that replays it.
func CheckBackoff(t testing.TB, newBackoff func(r *rand.Rand) policy.Backoff, p BackoffPromise) {
	t.Helper()
	if promiseFailed(t, p.validate()) {
		return
	}
	if newNil(t, "CheckBackoff", newBackoff == nil) {
		return
	}
	c := backoffCheck{newB: newBackoff, p: p}
	runAll(t, p.Select, []property{
		{[]string{B1, B3}, c.bounds},
		{[]string{B2}, c.envelope},
		{[]string{B3}, c.attempts},
		{[]string{B4}, c.elapsed},
		{[]string{B5}, c.reset},
		{[]string{B6}, c.replay},
		{[]string{B7}, c.storm},
	})
}

// CheckStorm checks only the storm-spreading property (B7): p.Clients
// clients built from different seeds lose the server at the same instant,
// every dial fails, and the attempts of each of p.Rounds rounds must be
// spread: no window of a tenth of the mean first delay may hold more than
// p.MaxRatio times what a uniform spread over twice that mean would put in
// it, nor than MaxRatio times a uniform spread over p.MinSpread. A backoff
// without jitter, or with jitter of a millisecond, puts every client in the
// same window and fails.
func CheckStorm(t testing.TB, newBackoff func(r *rand.Rand) policy.Backoff, p StormPromise) {
	t.Helper()
	if promiseFailed(t, p.validate()) {
		return
	}
	if newNil(t, "CheckStorm", newBackoff == nil) {
		return
	}
	c := backoffCheck{newB: newBackoff, p: BackoffPromise{Storm: p}}
	runAll(t, Select{}, []property{{[]string{B7}, c.storm}})
}

type backoffCheck struct {
	newB backoffFunc
	p    BackoffPromise
}

func (c backoffCheck) make(seed uint64) policy.Backoff {
	return c.newB(rand.New(rand.NewPCG(seed, seed^0x5851f42d4c957f2d)))
}

// streak is a drawn sequence of dial durations and server advice.
type streak struct {
	dial   []time.Duration // how long dial n took to fail
	advice time.Duration
}

func drawStreak(t *rapid.T, n int) streak {
	s := streak{dial: make([]time.Duration, n)}
	for i := range s.dial {
		s.dial[i] = drawDur(t, fmt.Sprintf("dial %d took", i+1), 0, 20*time.Second)
	}
	if rapid.IntRange(0, 3).Draw(t, "server advised") == 0 {
		s.advice = drawDur(t, "advice", 0, 10*time.Minute)
	}
	return s
}

func (c backoffCheck) fail(t *rapid.T, id, format string, args ...any) {
	t.Fatalf("[%s %s] %s", id, invariantName(id), fmt.Sprintf(format, args...))
}

// giveUpErr checks a give-up error wraps policy.ErrGaveUp (B3).
func (c backoffCheck) giveUpErr(t *rapid.T, sel Select, r policy.Retry, err error) {
	if sel.on(B3) && !errors.Is(err, policy.ErrGaveUp) {
		c.fail(t, B3, "attempt %d (elapsed %v): the error %q does not wrap policy.ErrGaveUp, so the Machine's users cannot tell a give-up from a bug", r.Attempt, r.Elapsed, err)
	}
}

// walk asks a fresh backoff for the delays of a drawn streak of up to
// maxAttempts dials, keeping Elapsed as the Machine would (each delay plus
// the dial's own time), and hands each delay to visit; a give-up ends the
// walk and is checked for B3.
func (c backoffCheck) walk(t *rapid.T, sel Select, maxAttempts int, visit func(r policy.Retry, d time.Duration)) {
	b := c.make(rapid.Uint64().Draw(t, "seed"))
	s := drawStreak(t, rapid.IntRange(1, maxAttempts).Draw(t, "attempts"))
	elapsed := time.Duration(0)
	for i, took := range s.dial {
		r := policy.Retry{Attempt: i + 1, Elapsed: elapsed, Advice: s.advice}
		d, err := b.Next(r)
		if err != nil {
			c.giveUpErr(t, sel, r, err)
			return
		}
		visit(r, d)
		elapsed += d + took
	}
}

// bounds is B1: every delay within [Min, Max], Max raised to the advice.
func (c backoffCheck) bounds(t *rapid.T, sel Select) {
	c.walk(t, sel, 80, func(r policy.Retry, d time.Duration) {
		hi := c.p.Max
		if hi > 0 {
			hi = max(hi, r.Advice)
		}
		if sel.on(B1) && (d < 0 || d < c.p.Min || (hi > 0 && d > hi)) {
			c.fail(t, B1, "attempt %d (elapsed %v, advice %v): delay %v outside the promised [%v, %v]", r.Attempt, r.Elapsed, r.Advice, d, c.p.Min, hi)
		}
	})
}

// envelope is B2: the largest delay over 32 seeds, attempt by attempt,
// never falls below half the previous attempt's.
func (c backoffCheck) envelope(t *rapid.T, _ Select) {
	seed := rapid.Uint64().Draw(t, "seed")
	n := rapid.IntRange(2, 100).Draw(t, "attempts")
	const k = 32
	bs := make([]policy.Backoff, k)
	for i := range bs {
		bs[i] = c.make(seed + uint64(i))
	}
	prev := time.Duration(-1)
	for a := 1; a <= n; a++ {
		env, live := time.Duration(0), 0
		for i, b := range bs {
			if b == nil {
				continue
			}
			d, err := b.Next(policy.Retry{Attempt: a})
			if err != nil {
				bs[i] = nil
				continue
			}
			live++
			env = max(env, d)
		}
		if live < k/2 {
			return // most gave up: the envelope of the rest says little
		}
		if prev >= 0 && env < prev/2 {
			c.fail(t, B2, "the largest delay of %d instances fell from %v at attempt %d to %v at attempt %d, before any reset", live, prev, a-1, env, a)
		}
		prev = env
	}
}

// attempts is B3: give up exactly after MaxAttempts, with ErrGaveUp.
func (c backoffCheck) attempts(t *rapid.T, sel Select) {
	b := c.make(rapid.Uint64().Draw(t, "seed"))
	limit := c.p.MaxAttempts
	n := rapid.IntRange(1, max(2*limit, 100)).Draw(t, "attempts")
	for a := 1; a <= n; a++ {
		r := policy.Retry{Attempt: a} // no time passes: only the attempt limit may bite
		_, err := b.Next(r)
		switch {
		case err != nil && (limit == 0 || a <= limit):
			if c.p.MaxElapsed == 0 {
				c.fail(t, B3, "gave up before attempt %d (%v), but the promised limit is %s", a, err, attemptsText(limit))
			}
			c.giveUpErr(t, sel, r, err)
			return
		case err == nil && limit > 0 && a > limit:
			c.fail(t, B3, "attempt %d got a delay, but the promised limit is %d attempts", a, limit)
		case err != nil:
			c.giveUpErr(t, sel, r, err)
			return
		}
	}
}

func attemptsText(n int) string {
	if n == 0 {
		return "unlimited"
	}
	return fmt.Sprint(n, " attempts")
}

// elapsed is B4: no dial scheduled past MaxElapsed; give up once it
// passed, and not before, unless the next delay could cross the limit.
func (c backoffCheck) elapsed(t *rapid.T, sel Select) {
	limit := c.p.MaxElapsed
	if limit == 0 {
		return
	}
	b := c.make(rapid.Uint64().Draw(t, "seed"))
	s := drawStreak(t, rapid.IntRange(1, 200).Draw(t, "attempts"))
	elapsed, longest := time.Duration(0), time.Duration(0)
	for i, took := range s.dial {
		r := policy.Retry{Attempt: i + 1, Elapsed: elapsed, Advice: s.advice}
		d, err := b.Next(r)
		if err != nil {
			c.giveUpErr(t, sel, r, err)
			// The next delay could have crossed the limit: at most Max
			// (raised to the advice), or twice the longest so far.
			reach := 2 * longest
			if c.p.Max > 0 {
				reach = max(c.p.Max, r.Advice)
			}
			attemptsOut := c.p.MaxAttempts > 0 && r.Attempt > c.p.MaxAttempts
			if !attemptsOut && elapsed+reach < limit {
				c.fail(t, B4, "gave up at attempt %d with %v elapsed (%v), but the promised limit is %v and no delay it may take (at most %v) reaches it", r.Attempt, elapsed, err, limit, reach)
			}
			return
		}
		if r.Elapsed >= limit {
			c.fail(t, B4, "attempt %d at %v elapsed got a delay %v, past the promised limit %v", r.Attempt, r.Elapsed, d, limit)
		}
		if r.Elapsed+d > limit {
			c.fail(t, B4, "attempt %d at %v elapsed: the delay %v schedules the dial at %v, past the promised limit %v", r.Attempt, r.Elapsed, d, r.Elapsed+d, limit)
		}
		longest = max(longest, d)
		elapsed += d + took
	}
}

// first is the promised bound of attempt 1's delay, or twice the largest
// first delay of 32 fresh instances.
func (c backoffCheck) first(seed uint64) time.Duration {
	if c.p.First > 0 {
		return c.p.First
	}
	hi := time.Duration(0)
	for i := range uint64(32) {
		if d, err := c.make(seed ^ (i+1)<<32).Next(policy.Retry{Attempt: 1}); err == nil {
			hi = max(hi, d)
		}
	}
	return 2 * hi
}

// reset is B5: after a streak of any length, attempt 1 is a first delay
// again and does not give up.
func (c backoffCheck) reset(t *rapid.T, sel Select) {
	seed := rapid.Uint64().Draw(t, "seed")
	b := c.make(seed)
	s := drawStreak(t, rapid.IntRange(1, 60).Draw(t, "attempts before the reset"))
	elapsed := time.Duration(0)
	for i, took := range s.dial {
		d, err := b.Next(policy.Retry{Attempt: i + 1, Elapsed: elapsed, Advice: s.advice})
		if err != nil {
			break
		}
		elapsed += d + took
	}
	first := c.first(seed)
	d, err := b.Next(policy.Retry{Attempt: 1})
	if err != nil {
		c.fail(t, B5, "after a streak of %d attempts, attempt 1 of the next streak gave up: %v", len(s.dial), err)
	}
	if d > first {
		c.fail(t, B5, "after a streak of %d attempts, attempt 1 of the next streak waits %v, more than a first delay (at most %v)", len(s.dial), d, first)
	}
}

// replay is B6: the same seed gives the same delays.
func (c backoffCheck) replay(t *rapid.T, _ Select) {
	seed := rapid.Uint64().Draw(t, "seed")
	a, b := c.make(seed), c.make(seed)
	s := drawStreak(t, rapid.IntRange(1, 60).Draw(t, "attempts"))
	elapsed := time.Duration(0)
	for i, took := range s.dial {
		if i > 0 && rapid.IntRange(0, 9).Draw(t, fmt.Sprintf("reset before %d", i+1)) == 0 {
			elapsed = 0
		}
		r := policy.Retry{Attempt: i + 1, Elapsed: elapsed, Advice: s.advice}
		d1, e1 := a.Next(r)
		d2, e2 := b.Next(r)
		if d1 != d2 || (e1 == nil) != (e2 == nil) || (e1 != nil && e1.Error() != e2.Error()) {
			c.fail(t, B6, "two instances built from seed %d disagree at attempt %d: (%v, %v) and (%v, %v)", seed, r.Attempt, d1, e1, d2, e2)
		}
		if e1 != nil {
			return
		}
		elapsed += d1 + took
	}
}

// storm is B7.
func (c backoffCheck) storm(t *rapid.T, _ Select) {
	sp := c.p.Storm.withDefaults()
	seed := rapid.Uint64().Draw(t, "seed")
	if msg := stormVerdict(c.newB, sp, seed); msg != "" {
		c.fail(t, B7, "%s", msg)
	}
}

// stormVerdict returns why the attempts of sp.Clients clients built from
// seed, seed+1, ... are not spread, or "".
func stormVerdict(newB backoffFunc, sp StormPromise, seed uint64) string {
	n := sp.Clients
	rounds := make([][]time.Duration, sp.Rounds)
	for i := range n {
		b := newB(rand.New(rand.NewPCG(seed+uint64(i), uint64(i))))
		at := time.Duration(0)
		for k := range sp.Rounds {
			d, err := b.Next(policy.Retry{Attempt: k + 1, Elapsed: at, Advice: sp.Advice})
			if err != nil {
				break
			}
			at += max(d, 0) // every dial fails at once
			rounds[k] = append(rounds[k], at)
		}
	}
	if len(rounds[0]) < 2 {
		return ""
	}
	var sum float64
	for _, at := range rounds[0] {
		sum += float64(at)
	}
	mean := time.Duration(sum / float64(len(rounds[0])))
	if mean == 0 {
		return fmt.Sprintf("all %d clients redial the instant the server goes away (every first delay is 0)", len(rounds[0]))
	}
	// The attempts should spread over twice the mean first delay, and
	// never over less than MinSpread in absolute time.
	spread := max(2*mean, sp.MinSpread)
	w := spread / 20
	uniform := float64(n) * float64(w) / float64(spread)
	for k, at := range rounds {
		slices.Sort(at)
		peak, from := 0, time.Duration(0)
		lo := 0
		for hi := range at {
			for at[hi]-at[lo] >= w {
				lo++
			}
			if c := hi - lo + 1; c > peak {
				peak, from = c, at[lo]
			}
		}
		if ratio := float64(peak) / uniform; ratio > sp.MaxRatio || math.IsNaN(ratio) {
			return fmt.Sprintf("round %d: %d of %d clients dial within %v of %v, %.1f times a uniform spread over %v (the larger of twice the mean first delay %v and MinSpread %v; allowed %.1f)",
				k+1, peak, n, w, from, ratio, spread, mean, sp.MinSpread, sp.MaxRatio)
		}
	}
	return ""
}
