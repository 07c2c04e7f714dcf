package presence

import (
	"time"

	"github.com/heartbeat-go/heartbeat/policy"
)

// spread moves a connection's first ping earlier by a fraction of its idle
// gap drawn per connection from [0, 1): the first ping falls anywhere in
// (0, T] of the interval T, so connections that all arrived together
// (after a restart) do not ping together for ever — later pings follow the
// first by the policy's own gaps, so the crowd stays spread evenly over
// the period. (Centrifuge draws from [T/2, T), which leaves every ping in
// half the period: twice the average load there.)
type spread struct {
	policy.Interval
	frac uint16 // the shift, in 1/65536ths of the first gap
}

func (s *spread) NextPing(l policy.Link) time.Time {
	t := s.Interval.NextPing(l)
	if t.IsZero() || !l.LastPing.IsZero() || l.Suspect || !t.After(l.AliveSince) {
		return t
	}
	gap := t.Sub(l.AliveSince)
	if gap > 1<<47 { // keep gap·frac within 64 bits
		return t.Add(-(gap >> 16) * time.Duration(s.frac))
	}
	return t.Add(-time.Duration(uint64(gap) * uint64(s.frac) >> 16))
}

// Validate passes on the wrapped policy's check, if it has one.
func (s *spread) Validate() error {
	if v, ok := s.Interval.(interface{ Validate() error }); ok {
		return v.Validate()
	}
	return nil
}

// mix64 is splitmix64's finaliser: well-spread bits from a counter.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}
