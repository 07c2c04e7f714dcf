package sim

import (
	"math/rand/v2"
	"time"

	"github.com/heartbeat-go/heartbeat/policy"
)

// fixedPreset is a preset built from the policy package's plain types,
// so the simulator's tests do not move when the named presets are tuned:
// both sides ping after every idle, suspect after suspect and are dead
// after dead; the client redials after a second.
func fixedPreset(idle, suspect, dead time.Duration) policy.Preset {
	return policy.Preset{
		Name: "test-fixed",
		Client: func(*rand.Rand) policy.Set {
			return policy.Set{Detector: &policy.Fixed{SuspectAfter: suspect, DeadAfter: dead}, Interval: &policy.Idle{Every: idle}, Backoff: &policy.Constant{Delay: time.Second}}
		},
		Server: func(*rand.Rand) policy.Set {
			return policy.Set{Detector: &policy.Fixed{SuspectAfter: suspect, DeadAfter: dead}, Interval: &policy.Idle{Every: idle}}
		},
	}
}

// serverPings is the shape of Socket.IO's or gorilla's heartbeat: the
// server pings every period whatever else happens; both sides are dead
// after dead of silence; the client only answers.
func serverPings(period, dead time.Duration) policy.Preset {
	return policy.Preset{
		Name: "test-server-pings",
		Client: func(*rand.Rand) policy.Set {
			return policy.Set{Detector: &policy.Fixed{SuspectAfter: dead, DeadAfter: dead}, Interval: policy.Never{}, Backoff: &policy.Constant{Delay: time.Second}}
		},
		Server: func(*rand.Rand) policy.Set {
			return policy.Set{Detector: &policy.Fixed{SuspectAfter: dead, DeadAfter: dead}, Interval: &policy.Every{Period: period}}
		},
	}
}
