package policy

import "time"

// Default returns fresh instances of the library's default policies: ping
// when the line has been idle for 10 s (every 2 s while suspect), suspect
// after 15 s of silence, dead after 25 s, redial after 1 s.
func Default() (Detector, Interval, Backoff) {
	return &Fixed{SuspectAfter: 15 * time.Second, DeadAfter: 25 * time.Second},
		&Idle{Every: 10 * time.Second, Probe: 2 * time.Second},
		&Constant{Delay: time.Second}
}
