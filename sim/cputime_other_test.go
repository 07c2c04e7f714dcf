//go:build !unix

package sim

import "time"

// cpuTime is not measured here: the events/cpu-s metric is left out.
func cpuTime() time.Duration { return 0 }
