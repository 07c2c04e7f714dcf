package proptest

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/policy"
)

func TestFirstDefault(t *testing.T) {
	CheckMachine(t, func(*rand.Rand) fsm.Config { return fsm.Config{} }, MachinePromise{
		Network:  policy.NetworkBound{Heartbeat: 5 * time.Second, MaxRTT: time.Second},
		Peer:     func(*rand.Rand) policy.Interval { return &policy.Listen{} },
		Interval: &IntervalPromise{Min: time.Second, Max: 5 * time.Second},
		Backoff:  &BackoffPromise{Max: 30 * time.Second},
	})
}

func TestFirstDetector(t *testing.T) {
	CheckDetector(t, func(*rand.Rand) policy.Detector {
		return &policy.Fixed{SuspectAfter: 15 * time.Second, DeadAfter: 25 * time.Second}
	},
		DetectorPromise{Network: policy.NetworkBound{Heartbeat: 10 * time.Second, MaxRTT: 4 * time.Second}, NoSuspect: true})
}

func TestFirstInterval(t *testing.T) {
	CheckInterval(t, func(*rand.Rand) policy.Interval { return &policy.Idle{Every: 10 * time.Second, Probe: 2 * time.Second} },
		IntervalPromise{Min: 2 * time.Second, Max: 10 * time.Second})
}

func TestFirstBackoffs(t *testing.T) {
	t.Run("fulljitter", func(t *testing.T) {
		CheckBackoff(t, func(r *rand.Rand) policy.Backoff { return &policy.FullJitter{Rand: r} }, BackoffPromise{Max: 30 * time.Second})
	})
	t.Run("grpc", func(t *testing.T) {
		CheckBackoff(t, func(r *rand.Rand) policy.Backoff { return &policy.GRPC{Rand: r} }, BackoffPromise{Max: 144 * time.Second})
	})
	t.Run("const", func(t *testing.T) {
		CheckBackoff(t, func(r *rand.Rand) policy.Backoff { return &policy.Constant{Delay: time.Second, MaxAttempts: 3} }, BackoffPromise{Min: time.Second, Max: time.Second, MaxAttempts: 3})
	})
}
