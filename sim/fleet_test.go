package sim

import (
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
		off.FalseDeadsPerConnDay(), on.FalseDeadsPerConnDay(), off.Detection.P50, on.Detection.P50, off.BytesPerConnMin(), on.BytesPerConnMin())
	if !(on.FalseDeadsPerConnDay() <= 0.2*off.FalseDeadsPerConnDay()) {
		t.Errorf("false deads %.2f with the fleet, %.2f without: want at most a fifth", on.FalseDeadsPerConnDay(), off.FalseDeadsPerConnDay())
	}
	if b0, b1 := off.BytesPerConnMin(), on.BytesPerConnMin(); b1 > 1.05*b0 {
		t.Errorf("heartbeat bytes %.1f → %.1f per connection-minute: more than 5 %%", b0, b1)
	}
	a, b := run("socketio", nil), run("socketio", &policy.Fleet{})
	if a.FalseDeads != b.FalseDeads || a.Detection != b.Detection || a.HeartbeatBytes != b.HeartbeatBytes {
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
