package policy

import (
	"math/rand/v2"
	"time"
)

// DefaultMaxWindow caps the reconnect window a server may advise: a
// million clients at a thousand accepts a second need about 17 minutes, and
// a client should not believe a server that asks for hours.
const DefaultMaxWindow = 10 * time.Minute

// Advised is the server-advised backoff. No client-only backoff can protect
// a restarted server from its own clients: with N clients and a first delay
// of about a second, the server sees about N attempts in that second
// whatever the jitter after it. The server knows N and how fast it accepts,
// so it advertises in its pings a window W = connected clients / accept
// rate (transport.Frame.ReconnectWindow; the Machine passes the last one as
// Retry.Advice).
//
// With advice W > 0, the first dial of a streak goes out at a moment drawn
// uniformly from [0, W) after the loss (minus Retry.Elapsed, the time already
// spent since the streak began), so N clients arrive at about N/W per second,
// the server's accept rate. Later dials follow Fallback, renumbered so that
// dial 2 is the fallback's first. Without advice Advised is exactly its
// Fallback.
type Advised struct {
	// Fallback is used without advice and after the first dial. Nil means
	// full jitter: FullJitter{Base: DefaultBackoffBase, Cap:
	// DefaultBackoffCap, Rand: Rand}.
	Fallback Backoff
	// MaxWindow caps the advice believed. Zero means DefaultMaxWindow.
	MaxWindow time.Duration
	// Rand draws the first delay (and the default fallback's). Required.
	Rand *rand.Rand
}

// Validate reports a configuration the policy cannot honour.
func (a *Advised) Validate() error {
	if err := needRand("advised backoff", a.Rand); err != nil {
		return err
	}
	if a.MaxWindow < 0 {
		return invalid("advised backoff", "max window %v must not be negative (zero means %v)", a.MaxWindow, DefaultMaxWindow)
	}
	if v, ok := a.Fallback.(Validator); ok {
		return v.Validate()
	}
	return nil
}

// Next returns the delay before dial r.Attempt.
func (a *Advised) Next(r Retry) (time.Duration, error) {
	if err := a.Validate(); err != nil {
		return 0, misconfigured(r, err)
	}
	if w := min(r.Advice, orDuration(a.MaxWindow, DefaultMaxWindow)); w > 0 {
		if r.Attempt <= 1 {
			return max(uniform(a.Rand, 0, float64(w))-r.Elapsed, 0), nil
		}
		r.Attempt--
	}
	if a.Fallback != nil {
		return a.Fallback.Next(r)
	}
	fj := FullJitter{Rand: a.Rand}
	return fj.Next(r)
}
