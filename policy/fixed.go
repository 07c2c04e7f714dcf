package policy

import (
	"fmt"
	"time"
)

// Fixed is the detector of gorilla's chat example and Socket.IO: the peer is
// suspect after SuspectAfter of silence and dead after DeadAfter.
type Fixed struct {
	SuspectAfter time.Duration // > 0
	DeadAfter    time.Duration // >= SuspectAfter
}

// NewFixed returns a validated Fixed detector.
func NewFixed(suspectAfter, deadAfter time.Duration) (*Fixed, error) {
	f := &Fixed{SuspectAfter: suspectAfter, DeadAfter: deadAfter}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	return f, nil
}

// Validate reports a configuration the detector cannot honour.
func (f *Fixed) Validate() error {
	if f.SuspectAfter <= 0 {
		return fmt.Errorf("policy: fixed detector: suspect timeout %v must be positive", f.SuspectAfter)
	}
	if f.DeadAfter < f.SuspectAfter {
		return fmt.Errorf("policy: fixed detector: dead timeout %v must not be shorter than the suspect timeout %v", f.DeadAfter, f.SuspectAfter)
	}
	return nil
}

// Start does nothing: a fixed detector learns nothing.
func (f *Fixed) Start(time.Time) {}

// Observe does nothing: a fixed detector learns nothing.
func (f *Fixed) Observe(time.Time, time.Duration) {}

// Timeouts returns the configured timeouts.
func (f *Fixed) Timeouts() (suspect, dead time.Duration) { return f.SuspectAfter, f.DeadAfter }

// Idle pings when nothing has arrived for Every, and every Probe while the
// peer is suspect: a connection busy with data costs no pings.
type Idle struct {
	Every time.Duration // > 0
	Probe time.Duration // 0 means Every
}

// NewIdle returns a validated Idle interval policy.
func NewIdle(every, probe time.Duration) (*Idle, error) {
	i := &Idle{Every: every, Probe: probe}
	if err := i.Validate(); err != nil {
		return nil, err
	}
	return i, nil
}

// Validate reports a configuration the policy cannot honour.
func (i *Idle) Validate() error {
	if i.Every <= 0 {
		return fmt.Errorf("policy: idle interval: ping interval %v must be positive", i.Every)
	}
	if i.Probe < 0 || i.Probe > i.Every {
		return fmt.Errorf("policy: idle interval: probe interval %v must be between 0 (same as the ping interval) and the ping interval %v", i.Probe, i.Every)
	}
	return nil
}

// NextPing returns the moment the line will have been idle for the interval.
func (i *Idle) NextPing(l Link) time.Time {
	gap := i.Every
	if l.Suspect && i.Probe > 0 {
		gap = i.Probe
	}
	return later(l.LastEvidence, l.LastPing).Add(gap)
}

// Every pings every Period whatever else arrives, like gorilla's write pump.
type Every struct {
	Period time.Duration // > 0
}

// Validate reports a configuration the policy cannot honour.
func (e *Every) Validate() error {
	if e.Period <= 0 {
		return fmt.Errorf("policy: every interval: ping period %v must be positive", e.Period)
	}
	return nil
}

// NextPing returns one period after the last ping (or the connect).
func (e *Every) NextPing(l Link) time.Time {
	return later(l.AliveSince, l.LastPing).Add(e.Period)
}

// Never is the Interval of a side that only listens (the client of a server
// that pings, as in Socket.IO).
type Never struct{}

// NextPing returns the zero Time: never ping.
func (Never) NextPing(Link) time.Time { return time.Time{} }

// Constant waits Delay before every dial and gives up after MaxAttempts
// dials in a row (0 means never give up).
type Constant struct {
	Delay       time.Duration // >= 0
	MaxAttempts int           // >= 0; 0 means unlimited
}

// Validate reports a configuration the policy cannot honour.
func (c *Constant) Validate() error {
	if c.Delay < 0 {
		return fmt.Errorf("policy: constant backoff: delay %v must not be negative", c.Delay)
	}
	if c.MaxAttempts < 0 {
		return fmt.Errorf("policy: constant backoff: max attempts %d must not be negative (0 means unlimited)", c.MaxAttempts)
	}
	return nil
}

// Next returns Delay, or an error wrapping ErrGaveUp past MaxAttempts.
func (c *Constant) Next(r Retry) (time.Duration, error) {
	if c.MaxAttempts > 0 && r.Attempt > c.MaxAttempts {
		return 0, &GaveUpError{Attempts: r.Attempt - 1, Elapsed: r.Elapsed, Limit: "max attempts"}
	}
	return c.Delay, nil
}

// GaveUpError says why a Backoff stopped. It wraps ErrGaveUp.
type GaveUpError struct {
	Attempts int           // dials made in the streak
	Elapsed  time.Duration // time since the streak began
	Limit    string        // which limit was reached
}

func (e *GaveUpError) Error() string {
	return fmt.Sprintf("policy: gave up reconnecting after %d attempts in %v: %s reached", e.Attempts, e.Elapsed, e.Limit)
}

// Unwrap returns ErrGaveUp.
func (e *GaveUpError) Unwrap() error { return ErrGaveUp }

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
