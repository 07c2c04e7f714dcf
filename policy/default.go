package policy

import (
	crand "crypto/rand"
	"math/rand/v2"
)

// Default returns fresh instances of the library's default policies, as the
// client side uses them:
//
//   - Adaptive{}: expects a heartbeat every 5 s on an idle line; suspect
//     after 5 s plus a learned margin (at least 250 ms), dead once two
//     probes 1 s apart had a round trip's margin to be answered;
//   - AdaptiveInterval{}: pings after 5 s of idle line, every 1 s while the
//     peer is suspect, relaxing back from 1 s to 5 s after a suspicion;
//   - Advised{}: the first redial spread over the server's advised window,
//     then full jitter from 1 s, capped at 30 s; without advice, full jitter.
//
// The backoff's random source is seeded from the operating system's entropy
// (crypto/rand): clients that all drew the same jitter would stampede
// together, which is what jitter exists to prevent. For replayable runs use
// DefaultSet with a seeded source, or the "default" preset.
func Default() (Detector, Interval, Backoff) {
	var seed [32]byte
	_, _ = crand.Read(seed[:]) // never fails (it aborts the program instead)
	s := DefaultSet(rand.New(rand.NewChaCha8(seed)))
	return s.Detector, s.Interval, s.Backoff
}

// DefaultSet returns the default client policies (see Default) with the
// backoff drawing from r.
func DefaultSet(r *rand.Rand) Set {
	return Set{Detector: &Adaptive{}, Interval: &AdaptiveInterval{ProbeGrowth: DefaultProbeGrowth}, Backoff: &Advised{Rand: r}}
}

// DefaultServerSet returns the server side of the default preset: the same
// detector, expecting the client's heartbeat every 5 s, and Listen, which
// pings only to probe a suspect client. Use it when the clients run this
// library's defaults; a server whose clients do not ping should use Default,
// which pings on its own.
func DefaultServerSet() Set {
	return Set{Detector: &Adaptive{}, Interval: &Listen{ProbeGrowth: DefaultProbeGrowth}}
}
