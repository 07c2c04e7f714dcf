package proptest_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/heartbeat-go/heartbeat/policy"
	"github.com/heartbeat-go/heartbeat/proptest"
)

// doubling is a custom backoff: double the delay, up to a minute, with
// full jitter drawn from the connection's own random source.
type doubling struct{ r *rand.Rand }

func (b doubling) Next(r policy.Retry) (time.Duration, error) {
	ceiling := min(time.Second<<min(r.Attempt-1, 10), time.Minute)
	return time.Duration(b.r.Int64N(int64(ceiling))), nil
}

// A test checks a custom policy in a few lines. In a real test file:
//
//	func TestDoubling(t *testing.T) {
//		proptest.CheckBackoff(t, func(r *rand.Rand) policy.Backoff { return doubling{r} },
//			proptest.BackoffPromise{Max: time.Minute})
//	}
//
// Here Verdict stands in for the test's t, to show the outcome.
func Example() {
	res := proptest.Verdict("doubling", func(t testing.TB) {
		proptest.CheckBackoff(t, func(r *rand.Rand) policy.Backoff { return doubling{r} },
			proptest.BackoffPromise{Max: time.Minute})
	})
	fmt.Println("doubling broke an invariant:", res.Failed)
	// Output: doubling broke an invariant: false
}

// A backoff without jitter sends every client back at the same instant
// after a server restart: the storm property (B7) catches it.
func ExampleCheckStorm() {
	res := proptest.Verdict("no-jitter", func(t testing.TB) {
		proptest.CheckStorm(t, func(*rand.Rand) policy.Backoff {
			return &policy.Exponential{Base: time.Second, Max: 30 * time.Second, Multiplier: 2}
		}, proptest.StormPromise{Clients: 500})
	})
	fmt.Println(res.Failed, res.Invariant)
	// Output: true B7
}

// A detector's promise: never dead while a live peer's frames come at most
// Heartbeat + MaxRTT apart, and dead within Detection of a failure. The
// library's Fixed detector keeps it when DeadAfter exceeds that gap.
func ExampleCheckDetector() {
	res := proptest.Verdict("fixed", func(t testing.TB) {
		proptest.CheckDetector(t, func(*rand.Rand) policy.Detector {
			return &policy.Fixed{SuspectAfter: 15 * time.Second, DeadAfter: 25 * time.Second}
		}, proptest.DetectorPromise{
			Network:   policy.NetworkBound{Heartbeat: 10 * time.Second, MaxRTT: 2 * time.Second},
			Detection: 27 * time.Second,
		})
	})
	fmt.Println("broken:", res.Failed)
	// Output: broken: false
}
