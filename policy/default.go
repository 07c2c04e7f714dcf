package policy

import (
	crand "crypto/rand"
	"math/rand/v2"
)

// Default returns fresh instances of the library's default policies, as the
// client side uses them:
//
//   - Adaptive{}: expects a heartbeat every 5 s on an idle line; suspect
//     after 5 s plus a learned margin (at least a round trip with room for
//     one TCP retransmission), dead once the last ping had that margin
//     again to be answered and the silence exceeds 14 times the worst
//     lateness the link has shown (at most that plus 5 s);
//   - AdaptiveInterval{ProbeGrowth: 2}: pings after 5 s of idle line; while
//     the peer is suspect probes 1 s after the last ping, then 2, 4, 8 s
//     (capped at 5 s), relaxing back from 1 s to 5 s after a suspicion;
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
// detector, expecting the client's heartbeat every 5 s, and Listen with
// ProbeGrowth 2, which probes a suspect client (at once, then 1, 2, 4, 8,
// 16 s apart), and with Advise DefaultAdvisePeriod, which pings a healthy
// client once when it connects and then once a minute so that the server's
// reconnect-window advice reaches it (pongs cannot carry it). Use it when the
// clients run this library's defaults; a server whose clients do not ping
// should use Default, which pings on its own.
func DefaultServerSet() Set {
	return Set{Detector: &Adaptive{}, Interval: &Listen{ProbeGrowth: DefaultProbeGrowth, Advise: DefaultAdvisePeriod}}
}
