package sim

import (
	"math"
	"testing"
	"time"

	"github.com/heartbeat-go/heartbeat/policy"
)

// One server's fleet, shared by its connections, removes most of
// default's false deads on mobile (the first handover stall of a new
// connection no longer looks like death) for at most 5 % more heartbeat
// bytes; a preset that takes no advice is untouched.
func TestFleetCutsFalseDeadsOnMobile(t *testing.T) {
	if testing.Short() {
		t.Skip("6 h × 34 connections, twice")
	}
	prof, _ := ProfileByName("mobile")
	run := func(name string, fl *policy.Fleet) *Result {
		p, err := policy.Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		r, err := Run(Config{Profile: prof, Preset: p, Conns: 34, Duration: 6 * time.Hour, Seed: 1, Fleet: fl})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	off, on := run("default", nil), run("default", &policy.Fleet{})
	t.Logf("false deads per connection-day %.2f → %.2f, p50 %v → %v, bytes/min %.0f → %.0f",
		off.FalseDeadsPerConnDay(), on.FalseDeadsPerConnDay(), off.Detection.Time.P50, on.Detection.Time.P50, off.BytesPerConnMin(), on.BytesPerConnMin())
	if !(on.FalseDeadsPerConnDay() <= 0.2*off.FalseDeadsPerConnDay()) {
		t.Errorf("false deads %.2f with the fleet, %.2f without: want at most a fifth", on.FalseDeadsPerConnDay(), off.FalseDeadsPerConnDay())
	}
	if b0, b1 := off.BytesPerConnMin(), on.BytesPerConnMin(); b1 > 1.05*b0 {
		t.Errorf("heartbeat bytes %.1f → %.1f per connection-minute: more than 5 %%", b0, b1)
	}
	a, b := run("socketio", nil), run("socketio", &policy.Fleet{})
	if a.False.Deads != b.False.Deads || a.Detection.Time != b.Detection.Time || a.Cost.HeartbeatBytes != b.Cost.HeartbeatBytes {
		t.Errorf("socketio takes no advice, yet its run changed with a fleet")
	}
}

// The advice travels only in the server's pings: on the first ping of a
// connection and then at most every DefaultFleetAdvicePeriod, 2 bytes, and
// 2 more in the pong that echoes it.
func TestFleetAdviceRidesServerPings(t *testing.T) {
	prof, _ := ProfileByName("lan")
	p, _ := policy.Lookup("default")
	s, err := newSim(Config{Profile: prof, Preset: p, Conns: 2, Duration: 30 * time.Minute, Seed: 3,
		Fleet: &policy.Fleet{Min: 20 * time.Second, Max: 20 * time.Second, MinTime: time.Nanosecond}})
	if err != nil {
		t.Fatal(err)
	}
	var advised, clientAdvised int
	var last [2]int64
	s.onSend = func(from side, e *event) bool {
		if e.flag&flagTimeout != 0 {
			if from == client {
				clientAdvised++
			}
			advised++
			if last[e.slot] != 0 && s.now-last[e.slot] < int64(policy.DefaultFleetAdvicePeriod) && s.slots[e.slot].advisedGen == e.gen {
				t.Errorf("slot %d advised again after %v", e.slot, time.Duration(s.now-last[e.slot]))
			}
			last[e.slot] = s.now
		}
		return true
	}
	if err := s.run(); err != nil {
		t.Fatal(err)
	}
	if clientAdvised != 0 {
		t.Errorf("the client sent advice %d times", clientAdvised)
	}
	// 2 connections × (connect + 30 min / 5 min), give or take a redial.
	if advised < 2*6 || advised > 2*8 {
		t.Errorf("%d advised pings in 30 min on 2 connections, want about 14", advised)
	}
}

// Hostile connections feeding the fleet: a tenth of them answering just
// before the timeout pushes the advice up to the detector's own bound
// (slower detection, never more false deads); a tenth answering at once
// and often dilutes the tail by at most that tenth. docs/security.md gives
// the sweep over seeds.
func TestHostileFleetStaysWithinBounds(t *testing.T) {
	if testing.Short() {
		t.Skip("6 h × 100 connections, three times")
	}
	prof, _ := ProfileByName("mobile")
	p, _ := policy.Lookup("default")
	run := func(h Hostile) (*Result, time.Duration) {
		fl := &policy.Fleet{}
		r, err := Run(Config{Profile: prof, Preset: p, Conns: 100, Duration: 6 * time.Hour, Seed: 2, Fleet: fl, Hostile: h})
		if err != nil {
			t.Fatal(err)
		}
		return r, fl.Advice("")
	}
	honest, adv0 := run(Hostile{})
	edge, advEdge := run(Hostile{Share: 0.1, Kind: HostileEdge})
	instant, advInstant := run(Hostile{Share: 0.1, Kind: HostileInstant})
	t.Logf("advice %v / edge %v / instant %v; false deads per connection-day %.3f / %.3f / %.3f; p50 %v / %v / %v",
		adv0, advEdge, advInstant, honest.FalseDeadsPerConnDay(), edge.FalseDeadsPerConnDay(), instant.FalseDeadsPerConnDay(),
		honest.Detection.Time.P50, edge.Detection.Time.P50, instant.Detection.Time.P50)
	if !(advEdge > adv0) || advEdge > policy.MaxAdvice {
		t.Errorf("edge: advice %v (honest %v): want higher, within MaxAdvice", advEdge, adv0)
	}
	if edge.FalseDeadsPerConnDay() > honest.FalseDeadsPerConnDay() {
		t.Errorf("edge: %.3f false deads per connection-day, honest %.3f", edge.FalseDeadsPerConnDay(), honest.FalseDeadsPerConnDay())
	}
	if advInstant < policy.MinAdvice || advInstant > policy.MaxAdvice {
		t.Errorf("instant: advice %v, outside [MinAdvice, MaxAdvice]", advInstant)
	}
	if d := instant.Detection.Time.P50 - honest.Detection.Time.P50; d < -honest.Detection.Time.P50/20 || d > honest.Detection.Time.P50/20 {
		t.Errorf("instant: p50 %v, honest %v: more than 5 %% apart", instant.Detection.Time.P50, honest.Detection.Time.P50)
	}
	// Diluting a tenth of the connection time raises the tail's rate by at
	// most 1/0.9; three standard deviations of a Poisson count on top.
	deads := func(r *Result) int64 { return r.False.Deads[0] + r.False.Deads[1] }
	mean := float64(deads(honest)) / 0.9
	if bound := mean + 3*math.Sqrt(mean) + 3; float64(deads(instant)) > bound {
		t.Errorf("instant: %d false deads, over %.1f (honest %d)", deads(instant), bound, deads(honest))
	}
	if _, err := Run(Config{Profile: prof, Preset: p, Hostile: Hostile{Share: 0.6}}); err == nil {
		t.Error("a hostile share of 0.6 was accepted")
	}
}
