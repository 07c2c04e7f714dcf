package proptest

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/policy"
)

// hourly is a sound fixed detector for its first hour; after that it
// expects a frame every millisecond, so it kills every connection that
// lives longer than an hour.
type hourly struct{ start, last time.Time }

func (d *hourly) Start(now time.Time)                    { d.start, d.last = now, now }
func (d *hourly) Observe(now time.Time, _ time.Duration) { d.last = now }
func (d *hourly) Timeouts() (time.Duration, time.Duration) {
	if d.last.Sub(d.start) > time.Hour {
		return time.Millisecond, time.Millisecond
	}
	return 15 * time.Second, 25 * time.Second
}

// huddled jitters every delay within one millisecond: the clients are
// spread relative to their mean (half a millisecond) and all redial at once.
type huddled struct{ r *rand.Rand }

func (b huddled) Next(policy.Retry) (time.Duration, error) {
	return time.Duration(b.r.Int64N(int64(time.Millisecond))), nil
}

// panicky panics on the first evidence it is given.
type panicky struct{}

func (panicky) Start(time.Time)                          {}
func (panicky) Observe(time.Time, time.Duration)         { panic("panicky: bad sample") }
func (panicky) Timeouts() (time.Duration, time.Duration) { return 15 * time.Second, 25 * time.Second }

// panickyBackoff panics from its fourth attempt on.
type panickyBackoff struct{}

func (panickyBackoff) Next(r policy.Retry) (time.Duration, error) {
	if r.Attempt > 3 {
		panic("panickyBackoff: index out of range")
	}
	return time.Second, nil
}

// The contract gaps of issue 12: each broken policy here passed the
// harness before the check that catches it was added.
func TestHarnessCatchesContractGaps(t *testing.T) {
	cases := []struct {
		name, id string
		check    func(testing.TB)
	}{
		{"detector that kills every connection after an hour", A1, func(tb testing.TB) {
			CheckDetector(tb, func(*rand.Rand) policy.Detector { return &hourly{} },
				DetectorPromise{Network: healthy, Detection: 30 * time.Second, Select: Select{Only: []string{A1}}})
		}},
		{"machine whose detector kills every connection after an hour", A1, func(tb testing.TB) {
			CheckMachine(tb, func(r *rand.Rand) fsm.Config {
				return fsm.Config{Detector: &hourly{}, Interval: &policy.Idle{Every: 5 * time.Second}, Backoff: &policy.Constant{Delay: time.Second}}
			}, MachinePromise{Network: healthy, Detection: 40 * time.Second, Select: Select{Only: []string{A1}}})
		}},
		{"backoff whose first redials all fall within 1 ms", B7, func(tb testing.TB) {
			CheckStorm(tb, func(r *rand.Rand) policy.Backoff { return huddled{r} }, StormPromise{})
		}},
		{"backoff that gives up at half its promised max elapsed", B4, func(tb testing.TB) {
			CheckBackoff(tb, func(r *rand.Rand) policy.Backoff {
				return &policy.Limit{Backoff: &policy.FullJitter{Cap: 30 * time.Second, Rand: r}, MaxElapsed: 5 * time.Minute}
			}, BackoffPromise{Max: 30 * time.Second, MaxElapsed: 10 * time.Minute, Select: Select{Only: []string{B4}}})
		}},
		{"detector that panics", M1, func(tb testing.TB) {
			CheckDetector(tb, func(*rand.Rand) policy.Detector { return panicky{} },
				DetectorPromise{Network: healthy, Detection: 30 * time.Second})
		}},
		{"backoff that panics", B1, func(tb testing.TB) {
			CheckBackoff(tb, func(*rand.Rand) policy.Backoff { return panickyBackoff{} }, BackoffPromise{Max: time.Minute})
		}},
		{"configuration the Machine rejects", V1, func(tb testing.TB) {
			CheckMachine(tb, func(*rand.Rand) fsm.Config { return fsm.Config{StallGrace: -time.Second} },
				MachinePromise{Network: healthy})
		}},
		{"peer that pings faster than the flood meter allows", V1, func(tb testing.TB) {
			CheckMachine(tb, func(*rand.Rand) fsm.Config { return fsm.Config{} },
				MachinePromise{Network: healthy, Peer: func(*rand.Rand) policy.Interval { return storming{} }})
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { expectCaught(t, c.id, c.check) })
	}
}

// The sound counterparts pass: a limit kept both ways, a storm spread over
// seconds, and a peer that pings every second against a machine whose own
// pings are 5 s apart (the flood meter convicted it at 63 s before
// fsm's flood rate was decoupled from MinPingInterval; the harness hid it
// by slowing the peer down).
func TestHarnessPassesSoundContracts(t *testing.T) {
	CheckBackoff(t, func(r *rand.Rand) policy.Backoff {
		return &policy.Limit{Backoff: &policy.FullJitter{Cap: 30 * time.Second, Rand: r}, MaxElapsed: 10 * time.Minute}
	}, BackoffPromise{Max: 30 * time.Second, MaxElapsed: 10 * time.Minute})
	CheckMachine(t, func(*rand.Rand) fsm.Config {
		return fsm.Config{
			Detector:        &policy.Fixed{SuspectAfter: 15 * time.Second, DeadAfter: 25 * time.Second},
			Interval:        &policy.Idle{Every: 10 * time.Second, Probe: 5 * time.Second},
			Backoff:         &policy.Constant{Delay: time.Second},
			MinPingInterval: 5 * time.Second,
		}
	}, MachinePromise{
		Network: policy.NetworkBound{Heartbeat: time.Second, MaxRTT: time.Second},
		Peer:    func(*rand.Rand) policy.Interval { return &policy.Every{Period: time.Second} },
		Select:  Select{Only: []string{F1, A1}},
	})
}
