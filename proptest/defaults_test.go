package proptest

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/policy"
)

// The zero Config, as a user gets it, on both sides: the library's own
// defaults must keep every promise the harness can check (F1 waits for the
// Machine's fix: see TestRegressionPingsQueuedDuringOurPauseAreNotAFlood).
func TestZeroConfigKeepsItsPromises(t *testing.T) {
	nb := policy.NetworkBound{Heartbeat: policy.DefaultAdaptiveInterval, MaxRTT: 300 * time.Millisecond}
	iv, _ := DeriveInterval(&policy.AdaptiveInterval{})
	bo, _ := DeriveBackoff(&policy.Advised{})
	skip := Select{Skip: []string{F1}}
	t.Run("client", func(t *testing.T) {
		CheckMachine(t, func(*rand.Rand) fsm.Config { return fsm.Config{} }, MachinePromise{
			Select:   skip,
			Network:  nb,
			Peer:     func(*rand.Rand) policy.Interval { return policy.DefaultServerSet().Interval },
			Interval: &iv,
			Backoff:  &bo,
		})
	})
	t.Run("server", func(t *testing.T) {
		CheckMachine(t, func(*rand.Rand) fsm.Config { return fsm.Config{Role: fsm.Server} }, MachinePromise{
			Select:   skip,
			Network:  nb,
			Peer:     func(*rand.Rand) policy.Interval { return &policy.AdaptiveInterval{} },
			Interval: &iv,
		})
	})
}
