package sim_test

import (
	"fmt"
	"time"

	"github.com/heartbeat-go/heartbeat/policy"
	"github.com/heartbeat-go/heartbeat/sim"
)

// Run one policy on one profile and read the QoS measures.
func ExampleRun() {
	wan, err := sim.ProfileByName("wan")
	if err != nil {
		panic(err)
	}
	preset, err := policy.Lookup("fixed")
	if err != nil {
		panic(err)
	}
	r, err := sim.Run(sim.Config{Profile: wan, Preset: preset, Conns: 20, Duration: 6 * time.Hour, Seed: 1})
	if err != nil {
		panic(err)
	}
	fmt.Println("failures measured:", r.Detection.Failures > 0)
	fmt.Println("all detected within a minute:", r.Detection.Undetected == 0 && r.Detection.Time.Max < time.Minute)
	fmt.Println("heartbeat bytes per connection-minute > 0:", r.BytesPerConnMin() > 0)
	// Output:
	// failures measured: true
	// all detected within a minute: true
	// heartbeat bytes per connection-minute > 0: true
}
