package policy_test

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/policy"
	"github.com/heartbeat-go/heartbeat/transport"
)

var wantPresets = []string{"adaptive", "akka", "centrifuge", "default", "fixed", "gorilla", "grpc", "phi", "phoenix", "signalr", "socketio", "ws"}

func TestPresetNames(t *testing.T) {
	if got := policy.Names(); !slices.Equal(got, wantPresets) {
		t.Fatalf("presets %v, want %v", got, wantPresets)
	}
	if _, err := policy.Lookup("nope"); err == nil || !strings.Contains(err.Error(), "socketio") {
		t.Fatalf("unknown preset: %v", err)
	}
}

// allPresets returns every registered preset and its equal-cost row.
func allPresets(t *testing.T) []policy.Preset {
	t.Helper()
	var out []policy.Preset
	for _, name := range policy.Names() {
		p, err := policy.Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		eq, err := policy.EqualCost(p)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out = append(out, p, eq)
	}
	return out
}

// TestPresetsBuildValidSets: both sides of every preset validate, cite a
// source, and are accepted by the Machine in their role.
func TestPresetsBuildValidSets(t *testing.T) {
	for _, p := range allPresets(t) {
		if p.Source == "" || p.Pings.Heartbeat() <= 0 {
			t.Errorf("%s: source %q, cadence %+v", p.Name, p.Source, p.Pings)
		}
		for _, role := range []fsm.Role{fsm.Client, fsm.Server} {
			s := build(p, role, seeded(1))
			if err := s.Validate(); err != nil {
				t.Errorf("%s %v: %v", p.Name, role, err)
			}
			if (s.Backoff == nil) != (role == fsm.Server) {
				t.Errorf("%s %v: backoff %v", p.Name, role, s.Backoff)
			}
			if _, ok := s.Detector.(policy.Bounded); !ok {
				t.Errorf("%s %v: detector %T states no bound", p.Name, role, s.Detector)
			}
			if _, err := fsm.NewMachine(fsm.Config{Role: role, Detector: s.Detector, Interval: s.Interval, Backoff: s.Backoff}); err != nil {
				t.Errorf("%s %v: machine: %v", p.Name, role, err)
			}
		}
	}
}

func build(p policy.Preset, role fsm.Role, r *rand.Rand) policy.Set {
	if role == fsm.Server {
		return p.Server(r)
	}
	return p.Client(r)
}

func TestEqualCost(t *testing.T) {
	p, _ := policy.Lookup("socketio")
	eq, err := policy.EqualCost(p)
	if err != nil || eq.Name != "adaptive@socketio" || eq.Pings != p.Pings {
		t.Fatalf("%+v, %v", eq, err)
	}
	c, s := eq.Client(seeded(1)), eq.Server(seeded(1))
	// The client keeps listening (and probes when suspect); the server pings
	// at Socket.IO's interval; the client keeps Socket.IO's backoff.
	if _, ok := c.Interval.(*policy.Listen); !ok {
		t.Errorf("client interval %T", c.Interval)
	}
	if iv, ok := s.Interval.(*policy.AdaptiveInterval); !ok || iv.Max != 25*sec {
		t.Errorf("server interval %+v", s.Interval)
	}
	if _, ok := c.Backoff.(*policy.Exponential); !ok {
		t.Errorf("client backoff %T", c.Backoff)
	}
	if _, err := policy.EqualCost(policy.Preset{Name: "x", Client: p.Client, Server: p.Server}); !errors.Is(err, policy.ErrInvalidConfig) {
		t.Errorf("no cadence: %v", err)
	}
}

func TestRegisterRejectsDuplicates(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("a duplicate preset name was accepted")
		}
	}()
	p, _ := policy.Lookup("default")
	policy.Register(p)
}

// pair runs a client and a server Machine, each with its side of a preset,
// over a simulated stream link: in order, each frame delayed uniformly in
// [minDelay, maxDelay]. It exists to hold the presets to their promises;
// the real simulator is package sim.
type pair struct {
	t                  *testing.T
	name               string
	rng                *rand.Rand
	minDelay, maxDelay time.Duration
	now                time.Time
	side               [2]*end
	queue              []delivery
	lastAt             [2]time.Time // per direction, to keep stream order
}

type end struct {
	m         *fsm.Machine
	role      fsm.Role
	acts      []fsm.Action
	connectAt time.Time // when a pending dial completes; zero if none
	crashed   bool
	deadAt    time.Time // the first Dead; zero if none
	lastPing  time.Time
}

type delivery struct {
	at time.Time
	to int
	f  transport.Frame
}

func newPair(t *testing.T, p policy.Preset, seed uint64, minDelay, maxDelay time.Duration) *pair {
	pr := &pair{t: t, name: p.Name, rng: seeded(seed), minDelay: minDelay, maxDelay: maxDelay, now: t0}
	for i, role := range []fsm.Role{fsm.Client, fsm.Server} {
		s := build(p, role, seeded(seed+uint64(i)+100))
		m, err := fsm.NewMachine(fsm.Config{Role: role, Detector: s.Detector, Interval: s.Interval, Backoff: s.Backoff})
		if err != nil {
			t.Fatalf("%s: %v", p.Name, err)
		}
		pr.side[i] = &end{m: m, role: role}
	}
	for i := range pr.side {
		pr.step(i, fsm.Input{Kind: fsm.Start})
	}
	return pr
}

func (p *pair) step(i int, in fsm.Input) {
	e := p.side[i]
	e.acts = e.m.Step(p.now, in, e.acts[:0])
	for _, a := range e.acts {
		switch a.Kind {
		case fsm.SendPing:
			if !e.lastPing.IsZero() && p.now.Sub(e.lastPing) < policy.MinPingGap {
				p.t.Fatalf("%s %v: pings %v apart", p.name, e.role, p.now.Sub(e.lastPing))
			}
			e.lastPing = p.now
			payload := binary.BigEndian.AppendUint64(nil, a.Seq)
			p.send(1-i, transport.Frame{Kind: transport.Ping, Seq: a.Seq, Payload: payload})
		case fsm.SendPong:
			p.send(1-i, transport.Frame{Kind: transport.Pong, Seq: binary.BigEndian.Uint64(a.Payload)})
		case fsm.Dial:
			e.connectAt = p.now.Add(p.minDelay) // both sides complete the handshake together
		case fsm.StateChanged:
			if a.To == fsm.Dead && e.deadAt.IsZero() {
				e.deadAt = p.now
			}
			if a.Reason == fsm.ReasonPingFlood {
				p.t.Fatalf("%s %v: closed for a ping flood", p.name, e.role)
			}
		}
	}
}

func (p *pair) send(to int, f transport.Frame) {
	at := p.now.Add(p.minDelay + time.Duration(p.rng.Int64N(int64(p.maxDelay-p.minDelay)+1)))
	at = later(at, p.lastAt[to])
	p.lastAt[to] = at
	p.queue = append(p.queue, delivery{at: at, to: to, f: f})
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// run advances virtual time to until, or until stop returns true.
func (p *pair) run(until time.Time, stop func() bool) {
	for !stop() {
		next, who, kind := until, -1, 0
		for i, e := range p.side {
			if e.crashed {
				continue
			}
			if dl := e.m.Deadline(); !dl.IsZero() && dl.Before(next) {
				next, who, kind = dl, i, 1
			}
			if !e.connectAt.IsZero() && e.connectAt.Before(next) {
				next, who, kind = e.connectAt, i, 2
			}
		}
		qi := -1
		for j, d := range p.queue {
			if d.at.Before(next) || (d.at.Equal(next) && qi < 0 && who < 0) {
				next, qi = d.at, j
			}
		}
		if qi < 0 && who < 0 {
			p.now = until
			return
		}
		p.now = next
		switch {
		case qi >= 0:
			d := p.queue[qi]
			p.queue = slices.Delete(p.queue, qi, qi+1)
			if !p.side[d.to].crashed {
				p.step(d.to, fsm.Input{Kind: fsm.FrameIn, Frame: d.f})
			}
		case kind == 2:
			p.side[who].connectAt = time.Time{}
			p.step(who, fsm.Input{Kind: fsm.Connected})
		default:
			p.step(who, fsm.Input{Kind: fsm.DeadlineReached})
		}
	}
}

// TestPresetsKeepPromises runs both sides of every preset (and its
// equal-cost row) through the Machine over a healthy link for twenty
// minutes, checking that nobody is declared dead and no side pings faster
// than MinPingGap; then it crashes one side and checks that the other
// declares it dead within the bound its detector states for the link.
func TestPresetsKeepPromises(t *testing.T) {
	const minDelay, maxDelay = 10 * ms, 150 * ms
	for _, p := range allPresets(t) {
		for seed := range uint64(2) {
			for crash := range 2 {
				pr := newPair(t, p, seed, minDelay, maxDelay)
				healthy := t0.Add(20*time.Minute + time.Duration(pr.rng.Int64N(int64(time.Minute))))
				pr.run(healthy, func() bool { return false })
				for _, e := range pr.side {
					if !e.deadAt.IsZero() || (e.m.State() != fsm.Alive && e.m.State() != fsm.Suspect) {
						t.Fatalf("%s seed %d: %v is %v on a healthy link (dead at %v)", p.Name, seed, e.role, e.m.State(), e.deadAt.Sub(t0))
					}
				}
				// The crashed side sends nothing more; frames in flight still arrive.
				pr.side[crash].crashed = true
				watcher := pr.side[1-crash]
				nb := policy.NetworkBound{Heartbeat: p.Pings.Heartbeat(), MaxRTT: 2 * maxDelay}
				s := build(p, watcher.role, seeded(0))
				bound, err := s.Detector.(policy.Bounded).DetectionBound(nb)
				if err != nil {
					t.Fatalf("%s %v: %v", p.Name, watcher.role, err)
				}
				pr.run(pr.now.Add(bound+time.Minute), func() bool { return !watcher.deadAt.IsZero() })
				if watcher.deadAt.IsZero() || watcher.deadAt.Sub(healthy) > bound {
					t.Fatalf("%s seed %d: %v declared the peer dead %v after its crash, bound %v",
						p.Name, seed, watcher.role, watcher.deadAt.Sub(healthy), bound)
				}
			}
		}
	}
}

// Every equal-cost name resolves, to the preset EqualCost builds; an
// unknown base is ErrUnknownPreset.
func TestLookupEqualCost(t *testing.T) {
	for _, name := range policy.Names() {
		base, _ := policy.Lookup(name)
		want, werr := policy.EqualCost(base)
		got, err := policy.Lookup(policy.EqualCostPrefix + name)
		if (err == nil) != (werr == nil) {
			t.Errorf("Lookup(%q) error %v, EqualCost error %v", policy.EqualCostPrefix+name, err, werr)
			continue
		}
		if err == nil && (got.Name != want.Name || got.Pings != want.Pings || got.Source != want.Source) {
			t.Errorf("Lookup(%q) = %q, want %q", policy.EqualCostPrefix+name, got.Name, want.Name)
		}
	}
	if _, err := policy.Lookup("adaptive@socketio"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"adaptive@nope", "nope", "adaptive@"} {
		if _, err := policy.Lookup(bad); !errors.Is(err, policy.ErrUnknownPreset) {
			t.Errorf("Lookup(%q) = %v, want ErrUnknownPreset", bad, err)
		}
	}
}
