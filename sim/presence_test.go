package sim

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/heartbeat-go/heartbeat/presence"
	"pgregory.net/rapid"
)

// forgetful is a planted broken registry: it has no resume window, so every
// lost connection is a leave at once, as per-connection presence is.
type forgetful struct{ r *presence.Registry }

func (f forgetful) Step(now time.Time, in presence.RegistryInput, out []presence.Event) []presence.Event {
	if in.Kind == presence.ConnLost {
		in.Kind = presence.ConnClosed
	}
	return f.r.Step(now, in, out)
}

func newForgetful() (PresenceRegistry, error) {
	r, err := presence.NewRegistry(presence.RegistryConfig{})
	return forgetful{r}, err
}

// stallProfile has false deads and nothing else: handover stalls longer
// than the test preset's dead timeout on a clean link, no real failure.
func stallProfile() Profile {
	return Profile{
		Name:   "stalls",
		Link:   Symmetric(Dir{Latency: Latency{Dist: Constant, Mean: 30 * time.Millisecond}}),
		Stalls: Weather{Every: 10 * time.Minute, Length: Latency{Dist: Uniform, Mean: 5 * time.Second, Jitter: time.Second}},
	}
}

// TestPresenceForgetfulFlaps: on a profile whose only troubles are false
// dead verdicts, a registry without a resume window flaps at every one
// while the real registry, fed the same run, never does.
func TestPresenceForgetfulFlaps(t *testing.T) {
	cfg := Config{
		Profile: stallProfile(), Preset: fixedPreset(time.Second, 2*time.Second, 3*time.Second),
		Conns: 20, Duration: 6 * time.Hour, Seed: 7,
		Presence: []Presence{{Window: DerivedWindow}, {Window: DerivedWindow, NewRegistry: newForgetful}, {Window: PerConnection}},
	}
	r, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r.False.Deads[1] == 0 {
		t.Fatal("the profile made no false dead verdict at the server: the test shows nothing")
	}
	real, planted, perConn := r.Presence[0], r.Presence[1], r.Presence[2]
	if real.Flaps != 0 {
		t.Errorf("the registry flapped %d times (%d leaves) with a %v window", real.Flaps, real.Leaves, real.Window)
	}
	if real.Window != presence.MinResumeWindow {
		t.Errorf("derived window %v, want %v for %d connections", real.Window, presence.MinResumeWindow, cfg.Conns)
	}
	if planted.Flaps == 0 || perConn.Flaps == 0 {
		t.Errorf("no flaps from the forgetful registry (%d) or per-connection presence (%d) after %d false deads at the server", planted.Flaps, perConn.Flaps, r.False.Deads[1])
	}
	if planted.Flaps != perConn.Flaps {
		t.Errorf("forgetful registry %d flaps, per-connection presence %d: the same feed should give the same", planted.Flaps, perConn.Flaps)
	}
	if planted.Flaps > r.False.Deads[0]+r.False.Deads[1] {
		t.Errorf("%d flaps from %d false deads", planted.Flaps, r.False.Deads[0]+r.False.Deads[1])
	}
	again, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for k := range again.Presence {
		again.Presence[k].NewRegistry, r.Presence[k].NewRegistry = nil, nil
	}
	if !reflect.DeepEqual(again.Presence, r.Presence) {
		t.Errorf("not deterministic:\n%+v\n%+v", r.Presence, again.Presence)
	}
}

// TestPresenceLeaveDelay: a client crashes on a quiet link; the leave
// comes the resume window after the server's dead verdict.
func TestPresenceLeaveDelay(t *testing.T) {
	const window = 7 * time.Second
	prof := Profile{Name: "quiet", Link: Symmetric(Dir{Latency: Latency{Dist: Constant, Mean: 20 * time.Millisecond}})}
	var faults []Fault
	for k := range 5 {
		faults = append(faults, Fault{At: time.Duration(10+20*k) * time.Minute, Slot: k, Kind: CrashClient, Outage: 5 * time.Minute})
	}
	r, err := Run(Config{
		Profile: prof, Preset: fixedPreset(time.Second, 2*time.Second, 4*time.Second),
		Conns: 5, Duration: 2 * time.Hour, Seed: 3, Faults: faults,
		Presence: []Presence{{Window: window}, {Window: PerConnection}, {Window: DerivedWindow}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Detection.Failures != len(faults) || r.Detection.Undetected != 0 {
		t.Fatalf("%d failures, %d undetected; want %d detected", r.Detection.Failures, r.Detection.Undetected, len(faults))
	}
	for k, want := range []time.Duration{window, 0, presence.MinResumeWindow} {
		p := r.Presence[k]
		if p.LeaveDelay.N != len(faults) || p.LeavesPending != 0 {
			t.Fatalf("model %d: %d leave delays, %d pending; want %d", k, p.LeaveDelay.N, p.LeavesPending, len(faults))
		}
		for _, q := range []struct {
			name      string
			got, want time.Duration
		}{{"p50", p.LeaveDelay.P50, r.Detection.Time.P50 + want}, {"max", p.LeaveDelay.Max, r.Detection.Time.Max + want}} {
			if d := q.got - q.want; d < -time.Millisecond || d > time.Millisecond {
				t.Errorf("model %d: leave %s %v, want detection + window = %v", k, q.name, q.got, q.want)
			}
		}
		if p.Flaps != 0 {
			t.Errorf("model %d: %d flaps after real departures", k, p.Flaps)
		}
	}
	// The fixed detector: dead 4 s after the last evidence, which is at most
	// a ping interval and a round trip before the crash.
	if d := r.Detection.Time.P50; d < 3*time.Second || d > 5*time.Second+100*time.Millisecond {
		t.Errorf("detection p50 %v, want about the 4 s dead timeout", d)
	}
}

// TestPresenceDerivedWindow: a loss gets the hub's window — the advised
// reconnect window for the connections still held plus the dial allowance.
func TestPresenceDerivedWindow(t *testing.T) {
	const conns, rate = 60, 4.0
	r, err := Run(Config{
		Profile: Profile{Name: "quiet", Link: Symmetric(Dir{Latency: Latency{Dist: Constant, Mean: 20 * time.Millisecond}})},
		Preset:  fixedPreset(time.Second, 2*time.Second, 4*time.Second), AcceptRate: rate, Spread: time.Minute,
		Conns: conns, Duration: 30 * time.Minute, Seed: 5,
		Faults:   []Fault{{At: 20 * time.Minute, Slot: 0, Kind: CrashClient, Outage: 5 * time.Minute}},
		Presence: []Presence{{}},
	})
	if err != nil {
		t.Fatal(err)
	}
	adv := time.Duration(float64(conns-1) / rate * float64(time.Second)).Round(time.Millisecond)
	want := adv + presence.DefaultDialAllowance
	p := r.Presence[0]
	if p.Window != want {
		t.Errorf("derived window %v, want %v", p.Window, want)
	}
	if d := p.LeaveDelay.P50 - (r.Detection.Time.P50 + want); d < -time.Millisecond || d > time.Millisecond {
		t.Errorf("leave delay %v, want detection %v + window %v", p.LeaveDelay.P50, r.Detection.Time.P50, want)
	}
}

// TestPresenceServerRestart: a restart loses the server's registry; the
// clients come back into a new one without a flap, and a crashed client's
// leave that was still due is counted as pending.
func TestPresenceServerRestart(t *testing.T) {
	r, err := Run(Config{
		Profile: Profile{Name: "quiet", Link: Symmetric(Dir{Latency: Latency{Dist: Constant, Mean: 20 * time.Millisecond}})},
		Preset:  fixedPreset(time.Second, 2*time.Second, 4*time.Second),
		Conns:   10, Duration: time.Hour, Seed: 9,
		Faults: []Fault{
			{At: 10 * time.Minute, Slot: 3, Kind: CrashClient, Outage: 5 * time.Minute},
			{At: 10*time.Minute + 6*time.Second, Kind: ServerRestart, Outage: 10 * time.Second},
		},
		Presence: []Presence{{Window: 30 * time.Second}},
	})
	if err != nil {
		t.Fatal(err)
	}
	p := r.Presence[0]
	if p.Flaps != 0 || p.LeavesPending != 1 || p.LeaveDelay.N != 0 {
		t.Errorf("flaps %d, pending %d, delays %d; want 0, 1, 0", p.Flaps, p.LeavesPending, p.LeaveDelay.N)
	}
	if p.Joins < 2*10 {
		t.Errorf("%d joins: want every user's first join and their join into the new registry", p.Joins)
	}
}

func TestPresenceBadWindow(t *testing.T) {
	prof, _ := ProfileByName("lan")
	for _, w := range []time.Duration{-2, presence.MaxResumeWindow + 1} {
		_, err := Run(Config{Profile: prof, Preset: fixedPreset(time.Second, 2*time.Second, 4*time.Second), Presence: []Presence{{Window: w}}})
		if !errors.Is(err, ErrConfig) {
			t.Errorf("window %v: err = %v, want ErrConfig", w, err)
		}
	}
	bad := errors.New("planted")
	_, err := Run(Config{Profile: prof, Preset: fixedPreset(time.Second, 2*time.Second, 4*time.Second),
		Presence: []Presence{{NewRegistry: func() (PresenceRegistry, error) { return nil, bad }}}})
	if !errors.Is(err, ErrConfig) || !errors.Is(err, bad) {
		t.Errorf("failing registry: err = %v, want ErrConfig wrapping it", err)
	}
}

// TestPresenceProperties: on random runs every model's counts agree with
// each other: users online at the end are joins less leaves, a flap is a
// leave, and a resume window only delays a crashed client's leave.
func TestPresenceProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cfg := drawConfig(t, Delivery(rapid.IntRange(0, 1).Draw(t, "delivery")))
		w := time.Duration(rapid.Int64Range(int64(time.Second), int64(time.Minute)).Draw(t, "window"))
		cfg.Presence = []Presence{{Window: PerConnection}, {Window: w}, {Window: DerivedWindow}}
		r, err := Run(cfg)
		if err != nil {
			t.Fatal(err)
		}
		restarts := false
		for _, f := range cfg.Faults {
			restarts = restarts || f.Kind == ServerRestart
		}
		for k, p := range r.Presence {
			// A restart forgets the users online; they join the new registry.
			if on := p.Joins - p.Leaves; on < 0 || on > int64(cfg.Conns) && !restarts {
				t.Fatalf("model %d: %d joins, %d leaves for %d users", k, p.Joins, p.Leaves, cfg.Conns)
			}
			if p.Flaps > p.Leaves || p.FlapsClosed > p.Flaps {
				t.Fatalf("model %d: %d flaps (%d closed), %d leaves", k, p.Flaps, p.FlapsClosed, p.Leaves)
			}
			if p.LeaveDelay.N > 0 && p.LeaveDelay.P50 < 0 {
				t.Fatalf("model %d: leave before the crash: %v", k, p.LeaveDelay.P50)
			}
		}
		pc, fixed := r.Presence[0], r.Presence[1]
		if pc.LeaveDelay.N == fixed.LeaveDelay.N && pc.LeaveDelay.N > 0 && fixed.LeaveDelay.P50 < pc.LeaveDelay.P50 {
			t.Fatalf("a %v window made the leave earlier: p50 %v < %v", w, fixed.LeaveDelay.P50, pc.LeaveDelay.P50)
		}
	})
}

// TestPresenceDrainCloses: the server's clean closes are leaves at once as
// the hub feeds them (each a flap: the client redials at once), and
// resumed sessions when fed as drains.
func TestPresenceDrainCloses(t *testing.T) {
	prof := Profile{
		Name: "recycled", Link: Symmetric(Dir{Latency: Latency{Dist: Constant, Mean: 20 * time.Millisecond}}),
		FailEvery: 30 * time.Minute, Mix: Mix{CleanClose: 1}, Outage: Latency{Dist: Constant, Mean: time.Second},
	}
	r, err := Run(Config{
		Profile: prof, Preset: fixedPreset(time.Second, 2*time.Second, 4*time.Second),
		Conns: 10, Duration: 6 * time.Hour, Seed: 11,
		Presence: []Presence{{}, {DrainCloses: true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	kick, drain := r.Presence[0], r.Presence[1]
	if kick.Flaps == 0 || kick.FlapsClosed != kick.Flaps {
		t.Errorf("hub feed: %d flaps, %d of them closes; want every clean close a flap", kick.Flaps, kick.FlapsClosed)
	}
	if drain.Flaps != 0 || drain.Leaves != 0 {
		t.Errorf("drain feed: %d flaps, %d leaves; want none", drain.Flaps, drain.Leaves)
	}
}
