// Package policies runs the Go snippets of docs/policies.md (see
// docs/snippets_test.go).
package policies

import (
	"fmt"
	"time"

	"github.com/heartbeat-go/heartbeat/policy"
)

// A detector's worst case under a network bound.
func Example_detectionBound() {
	d, err := (&policy.Fixed{SuspectAfter: 10 * time.Second, DeadAfter: 15 * time.Second}).
		DetectionBound(policy.NetworkBound{Heartbeat: 5 * time.Second, MaxRTT: time.Second})
	fmt.Println(d, err) // 16s <nil>
	// Output:
	// 16s <nil>
}
