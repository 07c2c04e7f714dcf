package sim

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Profile is a network and its troubles: the link, the weather a live
// connection must survive, and the failures it must detect. docs/simulator.md
// lists the built-in profiles with every parameter.
type Profile struct {
	Name string
	Link Link
	// Stalls black out both directions of a connection for a while (a
	// mobile handover, a Wi-Fi roam): a stream link delivers late, a
	// datagram link loses. A live peer: a dead verdict in a stall is false.
	Stalls Weather
	// Pauses make the client's own timers fire late (see Pause).
	Pauses Weather
	// FailEvery is the mean time between real failures on one connection
	// (exponential gaps, counted from the end of the previous outage);
	// 0 means none.
	FailEvery time.Duration
	// Mix weighs the kinds of failure.
	Mix Mix
	// Outage is how long a failed peer or link stays unreachable.
	Outage Latency
	// DialFailure is the chance that the server refuses a dial it would
	// otherwise take (an overloaded proxy, a flaky load balancer), in
	// [0, 1); proptest draws the same fault. 0: none.
	DialFailure float64
}

// Validate reports a profile that cannot run.
func (p Profile) Validate() error {
	if err := p.Link.Validate(); err != nil {
		return fmt.Errorf("profile %q: %w", p.Name, err)
	}
	for _, w := range []struct {
		name string
		w    Weather
	}{{"stalls", p.Stalls}, {"pauses", p.Pauses}} {
		if w.w.Every < 0 {
			return fmt.Errorf("sim: profile %q: %s every %v must not be negative (0 turns them off)", p.Name, w.name, w.w.Every)
		}
		if err := w.w.Length.Validate(); err != nil {
			return fmt.Errorf("profile %q %s length: %w", p.Name, w.name, err)
		}
	}
	if p.DialFailure < 0 || p.DialFailure >= 1 || p.DialFailure != p.DialFailure {
		return fmt.Errorf("sim: profile %q: dial failure %g must be in [0, 1)", p.Name, p.DialFailure)
	}
	if p.FailEvery < 0 {
		return fmt.Errorf("sim: profile %q: failure interval %v must not be negative (0 means none)", p.Name, p.FailEvery)
	}
	m := p.Mix
	if m.CrashClient < 0 || m.CrashServer < 0 || m.Partition < 0 || m.HalfOpen < 0 || m.CleanClose < 0 {
		return fmt.Errorf("sim: profile %q: failure weights must not be negative", p.Name)
	}
	if p.FailEvery > 0 && m.total() == 0 {
		return fmt.Errorf("sim: profile %q: failures every %v but every failure weight is zero", p.Name, p.FailEvery)
	}
	if err := p.Outage.Validate(); err != nil {
		return fmt.Errorf("profile %q outage: %w", p.Name, err)
	}
	return nil
}

// ErrUnknownProfile is wrapped by ProfileByName's error.
var ErrUnknownProfile = errors.New("sim: unknown profile")

var profiles = map[string]Profile{
	// A data-centre or office network: sub-millisecond, lossless. The only
	// failure is the one of the analytic check: the client host vanishes.
	"lan": {
		Name:      "lan",
		Link:      Symmetric(Dir{Latency: Latency{Dist: Normal, Mean: 500 * time.Microsecond, Jitter: 100 * time.Microsecond}}),
		FailEvery: 2 * time.Hour,
		Mix:       Mix{CrashClient: 1},
		Outage:    Latency{Dist: Constant, Mean: 2 * time.Minute},
	},
	// A continental internet path: 40 ms median with a log-normal body,
	// 0.5 % independent loss, a short stall now and then; every kind of
	// failure.
	"wan": {
		Name: "wan",
		Link: Symmetric(Dir{
			Latency: Latency{Dist: LogNormal, Mean: 40 * time.Millisecond, Shape: 0.3, Max: 2 * time.Second},
			Loss:    Loss{Rate: 0.005},
		}),
		Stalls:    Weather{Every: 2 * time.Hour, Length: Latency{Dist: Uniform, Mean: time.Second, Jitter: 500 * time.Millisecond}},
		FailEvery: 2 * time.Hour,
		Mix:       Mix{CrashClient: 4, CrashServer: 1, Partition: 2, HalfOpen: 2, CleanClose: 1},
		Outage:    Latency{Dist: Uniform, Mean: 3 * time.Minute, Jitter: 2 * time.Minute},
	},
	// A phone on a cellular network: heavy-tailed latency (Pareto, 60 ms
	// minimum), bursty loss (2 %, bursts of 4), handover stalls of seconds
	// every 20 minutes, the app's timers throttled for up to a minute now
	// and then; devices vanish and coverage drops.
	"mobile": {
		Name: "mobile",
		Link: Symmetric(Dir{
			Latency: Latency{Dist: Pareto, Mean: 60 * time.Millisecond, Shape: 2.5, Max: 5 * time.Second},
			Loss:    Loss{Rate: 0.02, Burst: 4},
		}),
		Stalls:    Weather{Every: 20 * time.Minute, Length: Latency{Dist: LogNormal, Mean: 2 * time.Second, Shape: 0.6, Max: 12 * time.Second}},
		Pauses:    Weather{Every: time.Hour, Length: Latency{Dist: Uniform, Mean: 30 * time.Second, Jitter: 25 * time.Second}},
		FailEvery: time.Hour,
		Mix:       Mix{CrashClient: 5, CrashServer: 1, Partition: 3, HalfOpen: 1, CleanClose: 1},
		Outage:    Latency{Dist: Uniform, Mean: 3 * time.Minute, Jitter: 2 * time.Minute},
	},
	// A bad path: frequent partitions and half-open links, blips of up to
	// a few seconds, 1 % loss in bursts of 3.
	"flaky": {
		Name: "flaky",
		Link: Symmetric(Dir{
			Latency: Latency{Dist: LogNormal, Mean: 80 * time.Millisecond, Shape: 0.5, Max: 3 * time.Second},
			Loss:    Loss{Rate: 0.01, Burst: 3},
		}),
		Stalls:    Weather{Every: 10 * time.Minute, Length: Latency{Dist: Exponential, Mean: 1500 * time.Millisecond, Max: 8 * time.Second}},
		FailEvery: 20 * time.Minute,
		Mix:       Mix{CrashClient: 1, CrashServer: 1, Partition: 4, HalfOpen: 4},
		Outage:    Latency{Dist: Uniform, Mean: 90 * time.Second, Jitter: 60 * time.Second},
	},
}

// ProfileNames returns the built-in profile names in the order of the
// standard comparison.
func ProfileNames() []string { return []string{"lan", "wan", "mobile", "flaky"} }

// ProfileByName returns the built-in profile called name.
func ProfileByName(name string) (Profile, error) {
	p, ok := profiles[name]
	if !ok {
		names := make([]string, 0, len(profiles))
		for n := range profiles {
			names = append(names, n)
		}
		sort.Strings(names)
		return Profile{}, fmt.Errorf("%w %q (known: %s)", ErrUnknownProfile, name, strings.Join(names, ", "))
	}
	return p, nil
}
