package sim

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/heartbeat-go/heartbeat/policy"
)

func TestConfigErrors(t *testing.T) {
	lan, _ := ProfileByName("lan")
	p := fixedPreset(5*time.Second, 8*time.Second, 12*time.Second)
	for _, c := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no preset", Config{Profile: lan}, "no preset"},
		{"negative conns", Config{Profile: lan, Preset: p, Conns: -1}, "connections"},
		{"negative duration", Config{Profile: lan, Preset: p, Duration: -time.Second}, "duration"},
		{"negative accept rate", Config{Profile: lan, Preset: p, AcceptRate: -1}, "accept rate"},
		{"fault outside run", Config{Profile: lan, Preset: p, Duration: time.Minute, Faults: []Fault{{At: time.Hour, Kind: Partition}}}, "outside the run"},
		{"fault slot", Config{Profile: lan, Preset: p, Conns: 2, Faults: []Fault{{Slot: 2, Kind: Partition}}}, "connection 2"},
		{"fault kind", Config{Profile: lan, Preset: p, Faults: []Fault{{Kind: 99}}}, "unknown fault kind"},
		{"bad loss", Config{Profile: Profile{Link: Symmetric(Dir{Loss: Loss{Rate: 1}})}, Preset: p}, "loss rate"},
		{"bad pareto", Config{Profile: Profile{Link: Symmetric(Dir{Latency: Latency{Dist: Pareto, Mean: time.Millisecond, Shape: 0.5}})}, Preset: p}, "tail index"},
		{"stream reorder", Config{Profile: Profile{Link: Symmetric(Dir{Reorder: 0.1})}, Preset: p}, "datagram"},
		{"weights", Config{Profile: Profile{FailEvery: time.Hour}, Preset: p}, "weight"},
		{"dial failure", Config{Profile: Profile{DialFailure: 1}, Preset: p}, "dial failure"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Run(c.cfg)
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("err = %v, want one wrapping ErrConfig", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %q, want it to mention %q", err, c.want)
			}
		})
	}
	if _, err := ProfileByName("moon"); !errors.Is(err, ErrUnknownProfile) {
		t.Fatalf("ProfileByName(moon) = %v, want ErrUnknownProfile", err)
	}
	if _, err := Storm(StormConfig{Preset: p, Clients: -5}); !errors.Is(err, ErrConfig) {
		t.Fatalf("Storm with -5 clients: %v, want ErrConfig", err)
	}
}

// TestStormFloor: however clients back off, the server's accept limit
// holds: nobody is back faster than the floor allows, every accepted
// client was counted, and clients that redial every second without
// jitter all get back but cost many refused attempts.
func TestStormFloor(t *testing.T) {
	p := fixedPreset(10*time.Second, 15*time.Second, 25*time.Second)
	r, err := Storm(StormConfig{Preset: p, Clients: 2000, AcceptRate: 200, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if r.Reset != 2000 || r.Back != 2000 {
		t.Fatalf("reset %d, back %d: want every client reset and back", r.Reset, r.Back)
	}
	// The bucket holds a tenth of a second's worth: the floor less 0.1 s.
	if min := r.Floor - 100*time.Millisecond; r.P99 < min*99/100 {
		t.Fatalf("p99 %v beats the floor %v", r.P99, r.Floor)
	}
	if r.TotalAttempts-r.Refused < int64(r.Back) {
		t.Fatalf("%d attempts, %d refused, but %d back", r.TotalAttempts, r.Refused, r.Back)
	}
	if r.PeakAttemptsPerSec < 1000 || r.Refused == 0 {
		t.Fatalf("peak %d/s, %d refused: a 1 s constant backoff should stampede", r.PeakAttemptsPerSec, r.Refused)
	}
	sum := 0
	for _, n := range r.AttemptsPerSec {
		sum += n
	}
	if int64(sum) != r.TotalAttempts {
		t.Fatalf("attempts per second add up to %d, total %d", sum, r.TotalAttempts)
	}
}

// TestStormPeakSlides: a burst that straddles a second boundary counts
// whole. Every client redials 999 ms after its reset, so the dials land
// within a millisecond of the restart's first second boundary; 1-second
// bins aligned to the restart split them in two.
func TestStormPeakSlides(t *testing.T) {
	p, err := policy.Lookup("socketio")
	if err != nil {
		t.Fatal(err)
	}
	client := p.Client
	p.Client = func(r *rand.Rand) policy.Set {
		s := client(r)
		s.Backoff = &policy.Constant{Delay: 999 * time.Millisecond}
		return s
	}
	r, err := Storm(StormConfig{Preset: p, Clients: 1000, AcceptRate: 100000, Seed: 1, Warmup: 30 * time.Second, Horizon: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.AttemptsPerSec) < 2 || r.AttemptsPerSec[0] == 0 || r.AttemptsPerSec[1] == 0 {
		t.Fatalf("attempts per aligned second %v: the burst should straddle the boundary", r.AttemptsPerSec)
	}
	if r.PeakAttemptsPerSec != 1000 {
		t.Fatalf("peak %d in a sliding second, want all 1000 dials", r.PeakAttemptsPerSec)
	}
}

func TestPeakMeter(t *testing.T) {
	p := PeakMeter{Window: time.Second}
	for i := range 10 { // 10 events 0.1 s apart from 0.55 s
		p.Add(550*time.Millisecond + time.Duration(i)*100*time.Millisecond)
	}
	p.Add(1550 * time.Millisecond) // the first leaves the window (0.55, 1.55]
	p.Add(5 * time.Second)
	if p.Max() != 10 {
		t.Fatalf("peak %d, want 10", p.Max())
	}
}

// TestDialFailure: refused dials, proptest's dial failures, cost redials
// but every client gets back; with none drawn the run refuses nothing.
func TestDialFailure(t *testing.T) {
	lan, _ := ProfileByName("lan")
	lan.FailEvery, lan.Mix = 10*time.Minute, Mix{CleanClose: 1}
	p := fixedPreset(5*time.Second, 8*time.Second, 12*time.Second)
	run := func(fail float64) *Result {
		prof := lan
		prof.DialFailure = fail
		r, err := Run(Config{Profile: prof, Preset: p, Conns: 20, Duration: 2 * time.Hour, Seed: 3})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	calm, flaky := run(0), run(0.5)
	if calm.Reconnects.Refused != 0 {
		t.Fatalf("no dial failure drawn, yet %d dials refused", calm.Reconnects.Refused)
	}
	if flaky.Reconnects.Refused == 0 || flaky.Reconnects.Dials <= calm.Reconnects.Dials {
		t.Fatalf("half the dials fail: %d refused, %d dials against %d without", flaky.Reconnects.Refused, flaky.Reconnects.Dials, calm.Reconnects.Dials)
	}
	if flaky.Reconnects.GaveUp != 0 {
		t.Fatalf("%d clients gave up over refused dials", flaky.Reconnects.GaveUp)
	}
}
