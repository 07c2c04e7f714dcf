// Package invariants runs the Go snippets of docs/invariants.md (see
// docs/snippets_test.go).
package invariants

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/heartbeat-go/heartbeat/policy"
	"github.com/heartbeat-go/heartbeat/proptest"
)

// myBackoff is a team's own backoff: full jitter over 1 s·2^(n-1), capped
// at a minute, giving up after ten attempts.
type myBackoff struct{ rand *rand.Rand }

func (b *myBackoff) Next(r policy.Retry) (time.Duration, error) {
	if r.Attempt > 10 {
		return 0, fmt.Errorf("my backoff: attempt %d: %w", r.Attempt, policy.ErrGaveUp)
	}
	ceil := time.Minute
	if r.Attempt < 7 {
		ceil = time.Second << (r.Attempt - 1)
	}
	return time.Duration(b.rand.Int64N(int64(ceil) + 1)), nil
}

func TestMyBackoff(t *testing.T) {
	proptest.CheckBackoff(t,
		func(r *rand.Rand) policy.Backoff { return &myBackoff{rand: r} },
		proptest.BackoffPromise{Max: time.Minute, MaxAttempts: 10})
}
