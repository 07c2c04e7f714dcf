package policy

import (
	"errors"
	"fmt"
	"time"
)

// NetworkBound describes how a live peer's evidence arrives. A detector's
// promise (see Bounded) is conditioned on it.
type NetworkBound struct {
	// Heartbeat is the longest the line stays quiet before a heartbeat is
	// sent: the ping interval of whichever side pings more often (for a side
	// that pings, its own idle interval; for a side that only listens, the
	// peer's). Must be positive.
	Heartbeat time.Duration
	// MaxRTT bounds how long after a heartbeat is sent its evidence arrives:
	// the round trip of a ping and its pong, or the one-way trip of the
	// peer's own ping. It also bounds frames still in flight when the peer
	// fails. Must not be negative.
	MaxRTT time.Duration
}

// Gap is the longest silence a live peer leaves under the bound:
// Heartbeat + MaxRTT.
func (nb NetworkBound) Gap() time.Duration { return nb.Heartbeat + nb.MaxRTT }

func (nb NetworkBound) validate() error {
	if nb.Heartbeat <= 0 {
		return fmt.Errorf("%w: heartbeat interval %v must be positive", ErrNoBound, nb.Heartbeat)
	}
	if nb.MaxRTT < 0 {
		return fmt.Errorf("%w: max round trip %v must not be negative", ErrNoBound, nb.MaxRTT)
	}
	return nil
}

// ErrNoBound is wrapped by the error DetectionBound returns when the
// detector cannot promise accuracy under the given network bound (its
// shortest possible dead timeout does not exceed the longest silence a live
// peer may leave), or when the bound itself is nonsense.
var ErrNoBound = errors.New("policy: no detection bound")

// Bounded is implemented by every detector in this package. It states the
// detector's worst case, so that tests (package proptest) can hold it to it
// through a Machine.
//
// For a NetworkBound nb, DetectionBound returns D and a nil error only if
// both of these hold while the driver wakes the Machine on time (a late
// wake-up buys the peer extra grace: see the fsm package's stall guard):
//
//   - accuracy: while the peer lives and no two consecutive pieces of
//     evidence arrive more than nb.Gap() apart, the Machine never declares
//     it dead;
//   - completeness: if the peer fails at time t (sends nothing after t),
//     the Machine declares it dead by t + D, whatever the network did before
//     t.
//
// A detector that learns may make D much larger than its typical detection
// time: D holds for the worst history its caps allow.
type Bounded interface {
	Detector
	DetectionBound(nb NetworkBound) (time.Duration, error)
}

// noBound reports that a detector's least dead timeout leaves no room for
// the silence a live peer may leave under nb.
func noBound(policy string, least time.Duration, nb NetworkBound) error {
	return fmt.Errorf("%w: %s: shortest dead timeout %v does not exceed the longest live silence %v (heartbeat %v + max round trip %v)",
		ErrNoBound, policy, least, nb.Gap(), nb.Heartbeat, nb.MaxRTT)
}
