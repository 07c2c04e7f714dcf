// Package architecture runs the Go snippets of docs/architecture.md (see
// docs/snippets_test.go).
package architecture

import (
	"fmt"
	"time"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/policy"
)

// The Machine's one door: Step with an input, then Deadline for the next
// wake-up.
func Example() {
	m, err := fsm.NewMachine(fsm.Config{
		Detector: &policy.Fixed{SuspectAfter: 10 * time.Second, DeadAfter: 15 * time.Second},
		Interval: &policy.Idle{Every: 5 * time.Second},
		Backoff:  &policy.Constant{Delay: time.Second},
	})
	if err != nil {
		panic(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var acts []fsm.Action
	acts = m.Step(now, fsm.Input{Kind: fsm.Start}, acts[:0])
	acts = m.Step(now, fsm.Input{Kind: fsm.Connected}, acts[:0])
	next := m.Deadline() // wake the machine then with fsm.DeadlineReached
	fmt.Println(m.State(), len(acts), next.Sub(now))
	// Output:
	// alive 1 5s
}
