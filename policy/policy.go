package policy

import (
	"errors"
	"time"
)

// Detector decides how long the peer may stay silent before it is suspect
// and before it is dead. A Machine owns one Detector per connection and calls
// it from one goroutine; implementations need no locking.
//
// Implementations must do O(1) work and allocate nothing per call.
type Detector interface {
	// Start tells the detector a connection was established at now. It may
	// keep what it learned on earlier connections. The Machine also calls
	// it, in place of Observe, for the first evidence after its own stall
	// (Config.StallThreshold): the silence since the last evidence spans
	// our pause, not the peer's lateness, and must not be learned.
	Start(now time.Time)
	// Observe records evidence of life (any inbound frame) arriving at now.
	// rtt is the round trip of the ping this frame answers, or 0 if unknown.
	Observe(now time.Time, rtt time.Duration)
	// Timeouts returns how long after the last evidence the peer becomes
	// suspect and then dead. The Machine requires 0 < suspect <= dead.
	Timeouts() (suspect, dead time.Duration)
}

// Advisable is implemented by detectors that take a dead-timeout advice
// learned across many connections (see Fleet): a server's detector at
// connect, a client's whenever the server's heartbeat carries one. The
// advice is a duration of silence after the last evidence; a detector
// ignores advice below MinAdvice and clamps it to its own detection bound,
// so no advice can make detection instant or unbounded.
type Advisable interface {
	Advise(dead time.Duration)
}

// Link is what a Machine tells an Interval policy when it asks for the next
// ping. All times are on the Machine's clock.
type Link struct {
	Now          time.Time
	AliveSince   time.Time // when the current connection was established
	LastEvidence time.Time // the last inbound frame (or the connect)
	LastPing     time.Time // the last ping sent on this connection; zero if none
	Unanswered   int       // pings sent since the last evidence
	Suspect      bool      // the detector's suspect timeout has passed
}

// Interval decides when to ping. A Machine owns one Interval per connection.
type Interval interface {
	// NextPing returns when the next ping should go out, or the zero Time
	// for never. A time at or before l.Now means "now"; the Machine still
	// keeps pings at least Config.MinPingInterval apart.
	NextPing(l Link) time.Time
}

// Retry is what a Machine tells a Backoff when it asks for a reconnect delay.
type Retry struct {
	// Attempt numbers the dial this delay precedes: 1 for the first dial
	// after a connection was lost (or after a stable connection), 2 for the
	// one after that failed, and so on.
	Attempt int
	// Elapsed is the time since the streak of attempts began: the loss of
	// the last stable connection.
	Elapsed time.Duration
	// Advice is the last reconnect window the server advertised, or 0.
	Advice time.Duration
}

// Backoff decides how long to wait before the next dial. A Machine owns one
// Backoff per connection.
type Backoff interface {
	// Next returns the delay before dial r.Attempt, or a non-nil error to give
	// up; the Machine then closes with that error as the reason. A Backoff
	// with memory starts over when r.Attempt is 1.
	Next(r Retry) (time.Duration, error)
}

// ErrGaveUp is wrapped by every error a Backoff returns to stop reconnecting.
var ErrGaveUp = errors.New("policy: gave up reconnecting")
