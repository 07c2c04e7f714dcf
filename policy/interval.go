package policy

import "time"

// Defaults of AdaptiveInterval and Listen, used where a field is zero.
const (
	DefaultIntervalMin    = time.Second             // probe gap while suspect
	DefaultIntervalMax    = DefaultAdaptiveInterval // idle gap while stable
	DefaultIntervalGrowth = 2.0                     // relaxation factor per ping
	// DefaultProbeGrowth is the probe backoff of the default and
	// equal-cost presets: each unanswered probe doubles the gap to the
	// next, as TCP doubles its retransmission timeout.
	DefaultProbeGrowth = 2.0
)

// AdaptiveInterval pings when the line has been idle, faster while the peer
// is suspect, and relaxes back while the link is stable — the "dynamic
// frequency" idea. Like Idle, a connection busy with data costs no pings.
//
// While suspect it probes every Min, so the detector's verdict comes quickly
// and rests on several probes. After the suspicion ends (or after a connect)
// the idle gap grows by Growth with every ping sent, from Min back to Max:
// a link that just had trouble is watched more closely for a while. The gap
// is always within [Min, Max], measured from the later of the last evidence
// and the last ping.
//
// Pair it with an Adaptive detector whose Interval is Max and whose Probe is
// Min. It keeps a few fields of state per connection. Settings outside their
// range are clamped into it when pinging; Validate reports them.
type AdaptiveInterval struct {
	// Min is the probe gap while suspect and the first gap after a
	// suspicion. Zero means DefaultIntervalMin; at least MinPingGap.
	Min time.Duration
	// Max is the idle gap on a stable link. Zero means DefaultIntervalMax;
	// at least Min.
	Max time.Duration
	// Growth multiplies the gap after each ping on a stable link. Zero
	// means DefaultIntervalGrowth; at least 1 (1 keeps the gap at Min after
	// a suspicion until the next connect).
	Growth float64
	// ProbeGrowth multiplies the probe gap after each unanswered probe
	// while suspect (see probeGap), up to Max. Zero means 1: every Min.
	ProbeGrowth float64

	conn time.Time     // AliveSince of the connection the state belongs to
	seen time.Time     // the last ping accounted for
	gap  time.Duration // the current idle gap
}

// Validate reports a configuration the policy cannot honour.
func (a *AdaptiveInterval) Validate() error {
	lo, hi := orDuration(a.Min, DefaultIntervalMin), orDuration(a.Max, DefaultIntervalMax)
	if lo < MinPingGap || hi < lo {
		return invalid("adaptive interval", "need %v <= min %v <= max %v (zero means %v and %v)", MinPingGap, lo, hi, DefaultIntervalMin, DefaultIntervalMax)
	}
	if g := orFloat(a.Growth, DefaultIntervalGrowth); !(g >= 1) {
		return invalid("adaptive interval", "growth %v must be at least 1 (zero means %v)", a.Growth, DefaultIntervalGrowth)
	}
	return validProbeGrowth("adaptive interval", a.ProbeGrowth)
}

func validProbeGrowth(name string, g float64) error {
	if g != 0 && !(g >= 1 && g <= MaxProbeGrowth) {
		return invalid(name, "probe growth %v must be in [1, %v] (zero means 1)", g, float64(MaxProbeGrowth))
	}
	return nil
}

// MaxProbeGrowth bounds ProbeGrowth of AdaptiveInterval and Listen.
const MaxProbeGrowth = 4

// maxProbeDoublings caps how many times a probe gap grows: with growth 2
// the gap stops at 16 times the first.
const maxProbeDoublings = 4

// probeGap is the gap before the next probe while suspect: lo after the
// first unanswered ping, then lo·growth^(k−1) after k of them (at most
// maxProbeDoublings growths). On a stream transport a probe sent behind an
// unanswered one cannot be answered sooner than it, so spacing them out
// as TCP spaces its own retransmissions saves heartbeats during a long
// stall and costs nothing in detection time (the detector decides on time
// since the last evidence, not on a count of probes).
func probeGap(lo time.Duration, growth float64, unanswered int) time.Duration {
	if !(growth > 1) || unanswered <= 1 {
		return lo
	}
	f := 1.0
	for range min(unanswered-1, maxProbeDoublings) {
		f *= min(growth, MaxProbeGrowth)
	}
	return time.Duration(float64(lo) * f)
}

func (a *AdaptiveInterval) bounds() (lo, hi time.Duration, growth float64) {
	lo = max(orDuration(a.Min, DefaultIntervalMin), MinPingGap)
	hi = max(orDuration(a.Max, DefaultIntervalMax), lo)
	growth = orFloat(a.Growth, DefaultIntervalGrowth)
	if !(growth >= 1) {
		growth = 1
	}
	return lo, hi, growth
}

// NextPing returns Min after the later of the last evidence and the last
// ping while suspect, and the current idle gap after it otherwise.
func (a *AdaptiveInterval) NextPing(l Link) time.Time {
	lo, hi, growth := a.bounds()
	if !l.AliveSince.Equal(a.conn) {
		a.conn, a.seen, a.gap = l.AliveSince, l.LastPing, hi
	}
	base := later(l.LastEvidence, l.LastPing)
	if l.Suspect {
		a.seen, a.gap = l.LastPing, lo
		return base.Add(min(probeGap(lo, a.ProbeGrowth, l.Unanswered), hi))
	}
	if !l.LastPing.Equal(a.seen) {
		a.seen = l.LastPing
		a.gap = time.Duration(min(float64(a.gap)*growth, float64(hi)))
	}
	a.gap = min(max(a.gap, lo), hi)
	return base.Add(a.gap)
}

// Gap returns the idle gap the policy currently keeps (for inspection).
func (a *AdaptiveInterval) Gap() time.Duration { return a.gap }

// DefaultAdvisePeriod is Listen.Advise in DefaultServerSet.
const DefaultAdvisePeriod = time.Minute

// Listen never pings while the peer's own heartbeats arrive (unless Advise
// is set), and probes every Probe once the peer is suspect: the side of a
// connection whose peer does the pinging (a Socket.IO client, a server whose
// clients ping) can still confirm a suspicion quickly instead of waiting
// out the peer's next heartbeat.
type Listen struct {
	Probe time.Duration // zero means DefaultIntervalMin; at least MinPingGap
	// ProbeGrowth multiplies the probe gap after each unanswered probe,
	// as AdaptiveInterval's does (at most 16 times Probe with growth 2).
	// Zero means 1: every Probe.
	ProbeGrowth float64
	// Advise, if positive, also pings a peer that is not suspect: once as
	// soon as the connection is up, then Advise after each ping. A server's
	// reconnect-window advice (fsm.DriverConfig.Advice) travels only in
	// its pings — a control pong must echo the client's ping payload (RFC
	// 6455 §5.5.3) — so a server that only listens never advises. Zero
	// means never; otherwise at least MinPingGap.
	Advise time.Duration
}

// Validate reports a configuration the policy cannot honour.
func (l *Listen) Validate() error {
	if l.Probe != 0 && l.Probe < MinPingGap {
		return invalid("listen interval", "probe interval %v must be at least %v (zero means %v)", l.Probe, MinPingGap, DefaultIntervalMin)
	}
	if l.Advise != 0 && l.Advise < MinPingGap {
		return invalid("listen interval", "advise period %v must be at least %v (zero means never)", l.Advise, MinPingGap)
	}
	return validProbeGrowth("listen interval", l.ProbeGrowth)
}

// NextPing returns, while the peer is suspect, the probe gap (Probe,
// growing by ProbeGrowth per unanswered probe) after the later of the last
// evidence and the last ping. Otherwise it returns the zero Time, or with
// Advise the connection's start if it has not pinged yet on it and Advise
// after its last ping if it has.
func (l *Listen) NextPing(k Link) time.Time {
	if !k.Suspect {
		if l.Advise <= 0 {
			return time.Time{}
		}
		if k.LastPing.IsZero() || k.LastPing.Before(k.AliveSince) {
			return k.AliveSince
		}
		return k.LastPing.Add(max(l.Advise, MinPingGap))
	}
	lo := max(orDuration(l.Probe, DefaultIntervalMin), MinPingGap)
	return later(k.LastEvidence, k.LastPing).Add(probeGap(lo, l.ProbeGrowth, k.Unanswered))
}
