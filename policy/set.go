package policy

import "time"

// Validator is implemented by every policy in this package that has
// settings. Validate reports the first nonsense setting as a *ConfigError.
type Validator interface {
	Validate() error
}

// Validate checks that s has a detector and an interval policy, that every
// policy of s implementing Validator is valid, and that the detector does
// not suspect the peer before a ping of s's own interval could be answered.
func (s Set) Validate() error {
	if s.Detector == nil {
		return invalid("set", "no detector")
	}
	if s.Interval == nil {
		return invalid("set", "no interval policy (use Never for a side that only listens)")
	}
	for _, p := range [...]any{s.Detector, s.Interval, s.Backoff} {
		if v, ok := p.(Validator); ok {
			if err := v.Validate(); err != nil {
				return err
			}
		}
	}
	suspect, dead := s.Detector.Timeouts()
	if suspect <= 0 || dead < suspect {
		return invalid("set", "detector timeouts suspect %v, dead %v: need 0 < suspect <= dead", suspect, dead)
	}
	if gap, ok := pingGap(s.Interval); ok && suspect <= gap {
		return invalid("set", "suspect timeout %v must be longer than the ping interval %v, or the peer is suspect before a ping can be answered", suspect, gap)
	}
	return nil
}

// pingGap is the longest an interval policy of this package lets the line
// idle before it pings, if it pings on its own.
func pingGap(iv Interval) (time.Duration, bool) {
	switch v := iv.(type) {
	case *Idle:
		return v.Every, true
	case *Every:
		return max(v.Period, v.First), true
	case *AdaptiveInterval:
		_, hi, _ := v.bounds()
		return hi, true
	}
	return 0, false
}
