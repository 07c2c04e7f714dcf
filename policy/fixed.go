package policy

import "time"

// MinPingGap is the shortest ping interval any policy here accepts. It is
// fsm.DefaultMinPingInterval: a peer that pings faster than this (beyond a
// burst) is closed as a ping flood, so no policy may ask for it.
const MinPingGap = 100 * time.Millisecond

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
		return invalid("fixed detector", "suspect timeout %v must be positive", f.SuspectAfter)
	}
	if f.DeadAfter < f.SuspectAfter {
		return invalid("fixed detector", "dead timeout %v must not be shorter than the suspect timeout %v", f.DeadAfter, f.SuspectAfter)
	}
	return nil
}

// Start does nothing: a fixed detector learns nothing.
func (f *Fixed) Start(time.Time) {}

// Observe does nothing: a fixed detector learns nothing.
func (f *Fixed) Observe(time.Time, time.Duration) {}

// Timeouts returns the configured timeouts.
func (f *Fixed) Timeouts() (suspect, dead time.Duration) { return f.SuspectAfter, f.DeadAfter }

// DetectionBound returns nb.MaxRTT + DeadAfter: the last frame the failed
// peer sent arrives within nb.MaxRTT, and the dead timeout runs from it. It
// promises accuracy only if DeadAfter exceeds nb.Gap().
func (f *Fixed) DetectionBound(nb NetworkBound) (time.Duration, error) {
	if err := nb.validate(); err != nil {
		return 0, err
	}
	if err := f.Validate(); err != nil {
		return 0, err
	}
	if f.DeadAfter <= nb.Gap() {
		return 0, noBound("fixed detector", f.DeadAfter, nb)
	}
	return nb.MaxRTT + f.DeadAfter, nil
}

// Idle pings when nothing has arrived for Every, and every Probe while the
// peer is suspect: a connection busy with data costs no pings.
type Idle struct {
	Every time.Duration // >= MinPingGap
	Probe time.Duration // 0 means Every; else in [MinPingGap, Every]
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
	if i.Every < MinPingGap {
		return invalid("idle interval", "ping interval %v must be at least %v", i.Every, MinPingGap)
	}
	if i.Probe != 0 && (i.Probe < MinPingGap || i.Probe > i.Every) {
		return invalid("idle interval", "probe interval %v must be 0 (same as the ping interval) or between %v and the ping interval %v", i.Probe, MinPingGap, i.Every)
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
	Period time.Duration // >= MinPingGap
	// First is how long after the connect the first ping goes out; zero
	// means Period. Centrifuge draws it from [Period/2, Period) and the npm
	// ws sweep pattern meets each connection at a random phase, which
	// spreads the pings of a crowd that connected together.
	First time.Duration
}

// Validate reports a configuration the policy cannot honour.
func (e *Every) Validate() error {
	if e.Period < MinPingGap {
		return invalid("every interval", "ping period %v must be at least %v", e.Period, MinPingGap)
	}
	if e.First < 0 {
		return invalid("every interval", "first ping delay %v must not be negative (zero means one period)", e.First)
	}
	return nil
}

// NextPing returns First after the connect for the first ping, then one
// period after the last ping.
func (e *Every) NextPing(l Link) time.Time {
	if e.First > 0 && l.LastPing.Before(l.AliveSince) {
		return l.AliveSince.Add(e.First)
	}
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
		return invalid("constant backoff", "delay %v must not be negative", c.Delay)
	}
	if c.MaxAttempts < 0 {
		return invalid("constant backoff", "max attempts %d must not be negative (0 means unlimited)", c.MaxAttempts)
	}
	return nil
}

// Next returns Delay, or an error wrapping ErrGaveUp past MaxAttempts.
func (c *Constant) Next(r Retry) (time.Duration, error) {
	if err := c.Validate(); err != nil {
		return 0, misconfigured(r, err)
	}
	if c.MaxAttempts > 0 && r.Attempt > c.MaxAttempts {
		return 0, gaveUp(r, "max attempts")
	}
	return c.Delay, nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
