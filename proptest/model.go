package proptest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	lfsm "github.com/looplab/fsm"
	"pgregory.net/rapid"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/policy"
	"github.com/heartbeat-go/heartbeat/transport"
)

// modelCheck is M3: a rapid state-machine test that drives the real
// Machine with random inputs at random times and compares every step with
// a reference model: a looplab/fsm FSM built from fsm.Transitions for the
// states, and the documented timing rules, written out plainly, for when a
// transition must, may or must not happen.
func modelCheck(newConfig func(r *rand.Rand) fsm.Config) func(*rapid.T, Select) {
	return func(t *rapid.T, _ Select) {
		seed := rapid.Uint64().Draw(t, "policy seed")
		cfg := withDefaults(newConfig(rand.New(rand.NewPCG(seed, ^seed))), rand.New(rand.NewPCG(^seed, seed)))
		m, err := fsm.NewMachine(cfg)
		if err != nil {
			t.Fatalf("[%s %s] proptest: the configuration under test is invalid: %v", V1, invariantName(V1), err)
		}
		_, d := cfg.Detector.Timeouts()
		sm := &model{
			m:     m,
			det:   cfg.Detector,
			set:   resolve(cfg),
			ref:   reference(),
			scale: min(max(d, 10*time.Millisecond), time.Hour),
			le:    -1,
			stall: -1,
			ping:  -1,
		}
		t.Repeat(rapid.StateMachineActions(sm))
	}
}

// model is the reference the Machine is compared with.
type model struct {
	m     *fsm.Machine
	det   policy.Detector
	set   settings
	ref   *lfsm.FSM
	scale time.Duration
	fatal func(format string, args ...any) // the current action's t.Fatalf

	now     time.Duration
	acts    []fsm.Action
	log     []string
	quiet   bool // keep no log (the exhaustive search prints its path instead)
	started bool
	dialing bool
	dialAt  time.Duration // when the dial began
	redial  time.Duration // Reconnecting: when the redial is due
	connUp  bool
	le      time.Duration // last evidence (or the connect); -1: none
	stall   time.Duration // the first late wake-up since le; -1: none
	ping    time.Duration // the last ping on this connection; -1: none
	seq     uint64
}

func (s *model) fail(format string, args ...any) {
	s.fatal("[%s %s] at %v: %s\nsteps (time, input, actions, state after):\n%s", M3, invariantName(M3), s.now, fmt.Sprintf(format, args...), strings.Join(s.log, "\n"))
}

// at draws when the next input happens: now, or later by up to twice the
// dead timeout, which may well be past the deadline (an input racing the
// timer).
func (s *model) at(t *rapid.T) {
	s.fatal = t.Fatalf
	s.now += drawDur(t, "after", 0, 2*s.scale)
}

func (s *model) Start(t *rapid.T) { s.at(t); s.step(fsm.Input{Kind: fsm.Start}) }

func (s *model) Connected(t *rapid.T) { s.at(t); s.step(fsm.Input{Kind: fsm.Connected}) }

func (s *model) DialFailed(t *rapid.T) {
	s.at(t)
	s.step(fsm.Input{Kind: fsm.DialFailed, Err: errRefused})
}

func (s *model) Frame(t *rapid.T) {
	s.at(t)
	f := transport.Frame{Kind: rapid.SampledFrom([]transport.FrameKind{transport.Data, transport.Ping, transport.Pong}).Draw(t, "frame")}
	switch f.Kind {
	case transport.Pong:
		f.Seq = s.seq
		if rapid.Bool().Draw(t, "stale pong") {
			f.Seq = 0
		}
	case transport.Ping:
		f.Payload = []byte{byte(s.now)}
	}
	s.step(fsm.Input{Kind: fsm.FrameIn, Frame: f})
}

func (s *model) SendFailed(t *rapid.T) {
	s.at(t)
	s.step(fsm.Input{Kind: fsm.SendFailed, Err: errBroken})
}

func (s *model) PeerClosed(t *rapid.T) {
	s.at(t)
	s.step(fsm.Input{Kind: fsm.PeerClosed, Err: errPeerGone})
}

func (s *model) Close(t *rapid.T) {
	if rapid.IntRange(0, 9).Draw(t, "close now") != 0 {
		t.Skip("close rarely, so that runs get somewhere first")
	}
	s.at(t)
	s.step(fsm.Input{Kind: fsm.CloseRequested})
}

// Wake wakes the machine exactly at its deadline.
func (s *model) Wake(t *rapid.T) {
	s.fatal = t.Fatalf
	dl := s.m.Deadline()
	if dl.IsZero() {
		t.Skip("nothing pending")
	}
	s.now = max(s.now, dl.Sub(t0))
	s.step(fsm.Input{Kind: fsm.DeadlineReached})
}

// WakeLate wakes the machine late, as after a local pause.
func (s *model) WakeLate(t *rapid.T) {
	s.fatal = t.Fatalf
	dl := s.m.Deadline()
	if dl.IsZero() {
		t.Skip("nothing pending")
	}
	s.now = max(s.now, dl.Sub(t0)+drawDur(t, "late by", 0, 2*s.scale))
	s.step(fsm.Input{Kind: fsm.DeadlineReached})
}

// Check runs after every action: the machine is where the reference says.
func (s *model) Check(t *rapid.T) {
	s.fatal = t.Fatalf
	if got, want := s.m.State().String(), s.ref.Current(); got != want {
		s.fail("the machine is in %v, the reference in %v", got, want)
	}
}

func (s *model) timeouts() (time.Duration, time.Duration) {
	su, d := s.det.Timeouts()
	su = max(su, 1)
	return su, max(d, su)
}

func (s *model) step(in fsm.Input) {
	before := s.m.State()
	prev := s.m.Deadline()
	now := t0.Add(s.now)
	due := !prev.IsZero() && !prev.After(now)
	stalled := s.set.stallThreshold >= 0 && !prev.IsZero() && now.Sub(prev) > s.set.stallThreshold
	live := before == fsm.Alive || before == fsm.Suspect
	if stalled && live && s.stall < 0 {
		s.stall = s.now
	}
	s.acts = s.m.Step(now, in, s.acts[:0])
	if !s.quiet {
		line := fmt.Sprintf("  %-12v %-16s", s.now, describeInput(in))
		for _, a := range s.acts {
			line += " " + describeAction(a)
		}
		s.log = append(s.log, line+" => "+s.m.State().String())
	}

	if before == fsm.Closed {
		if len(s.acts) > 0 {
			s.fail("closed, yet %v produced actions", describeInput(in))
		}
		return
	}
	// Inputs the machine must ignore, when nothing is due.
	ignored := false
	switch in.Kind {
	case fsm.Start:
		ignored = s.started
	case fsm.Connected, fsm.DialFailed:
		ignored = !s.dialing
	case fsm.FrameIn:
		ignored = !live
	case fsm.SendFailed, fsm.PeerClosed:
		ignored = !live && !s.dialing
	}
	if ignored && !due && len(s.acts) > 0 {
		s.fail("%v in %v must be ignored, yet the machine did %s", describeInput(in), before, describeAction(s.acts[0]))
	}

	su, d := s.timeouts()
	flood := false
	for _, a := range s.acts {
		switch a.Kind {
		case fsm.SendPing:
			if cur := s.ref.Current(); cur != fsm.Alive.String() && cur != fsm.Suspect.String() {
				s.fail("a ping sent in %v", cur)
			}
			if s.ping >= 0 && s.now-s.ping < s.set.minPing {
				s.fail("pings %v apart, under MinPingInterval %v", s.now-s.ping, s.set.minPing)
			}
			s.ping, s.seq = s.now, a.Seq
		case fsm.SendPong:
			if in.Kind != fsm.FrameIn || in.Frame.Kind != transport.Ping || string(a.Payload) != string(in.Frame.Payload) {
				s.fail("a pong that answers no ping, or with the wrong payload")
			}
		case fsm.Dial:
			s.dialing, s.dialAt = true, s.now
		case fsm.CloseTransport:
			if !s.dialing && !s.connUp {
				s.fail("closed a transport that does not exist")
			}
			s.dialing, s.connUp = false, false
		case fsm.StateChanged:
			s.transition(a, in, stalled, su, d)
			if a.Reason == fsm.ReasonPingFlood {
				flood = true
			}
		}
	}
	if in.Kind == fsm.Start && !s.started {
		s.started = true
		if len(s.acts) != 1 || s.acts[0].Kind != fsm.Dial {
			s.fail("Start must dial and do nothing else")
		}
	}
	if in.Kind == fsm.FrameIn && live && !flood {
		s.le, s.stall = s.now, -1
		if in.Frame.Kind == transport.Ping && (len(s.acts) == 0 || s.acts[0].Kind != fsm.SendPong) {
			s.fail("a ping was not answered first")
		}
		if before == fsm.Suspect && s.m.State() != fsm.Alive {
			s.fail("a frame while suspect left the machine %v", s.m.State())
		}
	}
	if in.Kind == fsm.CloseRequested && s.m.State() != fsm.Closed {
		s.fail("a close request left the machine %v", s.m.State())
	}
	s.late(su, d)
}

// transition checks one reported change against the declaration (through
// looplab/fsm) and against the timing rules.
func (s *model) transition(a fsm.Action, in fsm.Input, stalled bool, su, d time.Duration) {
	if a.From.String() != s.ref.Current() {
		s.fail("change %v→%v, but the reference is in %v", a.From, a.To, s.ref.Current())
	}
	if !s.ref.Can(a.Event.String()) {
		s.fail("change %v→%v by %q: not an edge of the declaration", a.From, a.To, a.Event)
	}
	if err := s.ref.Event(context.Background(), a.Event.String()); err != nil {
		s.fail("looplab refuses %q from %v: %v", a.Event, a.From, err)
	}
	if got := s.ref.Current(); got != a.To.String() {
		s.fail("%q from %v leads to %v in the declaration, the machine says %v", a.Event, a.From, got, a.To)
	}
	switch {
	case a.From == fsm.Connecting && a.To == fsm.Alive:
		if in.Kind != fsm.Connected {
			s.fail("alive without a Connected input")
		}
		s.connUp, s.dialing, s.le, s.stall, s.ping = true, false, s.now, -1, -1
	case a.From == fsm.Alive && a.To == fsm.Suspect:
		if s.now < s.le+su {
			s.fail("suspect at %v, before the suspect timeout %v after the last frame at %v", s.now, su, s.le)
		}
	case a.From == fsm.Suspect && a.To == fsm.Alive:
		if in.Kind != fsm.FrameIn {
			s.fail("back to alive without a frame")
		}
	case a.Event == fsm.EvConvict:
		if s.now < s.le+d {
			s.fail("convicted at %v, before the dead timeout %v after the last frame at %v", s.now, d, s.le)
		}
		if stalled && s.stall == s.now {
			s.fail("convicted in the first late wake-up since the last frame")
		}
		if s.stall >= 0 && s.now < s.stall+min(max(d-su, s.set.stallGrace), d) {
			s.fail("convicted at %v, before the stall at %v had its grace", s.now, s.stall)
		}
	case a.To == fsm.Reconnecting:
		s.redial = s.now + a.Delay
		if a.From == fsm.Connecting { // fsm starts dials at least MinRedialGap apart
			s.redial = max(s.redial, s.dialAt+fsm.MinRedialGap)
		}
		if a.Delay < 0 {
			s.fail("negative backoff delay %v", a.Delay)
		}
	case a.From == fsm.Reconnecting && a.To == fsm.Connecting:
		if s.now < s.redial {
			s.fail("redialled at %v, before the backoff delay ended at %v", s.now, s.redial)
		}
	case a.Reason == fsm.ReasonConnectTimeout:
		if s.now < s.dialAt+s.set.connectTimeout {
			s.fail("connect timeout at %v for a dial begun at %v, before ConnectTimeout %v", s.now, s.dialAt, s.set.connectTimeout)
		}
	}
	if a.To == fsm.Dead || a.To == fsm.Closed {
		s.connUp = false
	}
}

// late checks nothing overdue is left undone after a step.
func (s *model) late(su, d time.Duration) {
	switch s.m.State() {
	case fsm.Alive:
		if s.now >= s.le+su {
			s.fail("still alive at %v, past the suspect timeout %v after the last frame at %v", s.now, su, s.le)
		}
	case fsm.Suspect:
		limit := s.le + d
		if s.stall >= 0 {
			limit = max(limit, s.stall+max(d, s.set.stallGrace))
		}
		if s.now >= limit {
			s.fail("still suspect at %v, past the dead timeout %v after the last frame at %v (stall at %v)", s.now, d, s.le, s.stall)
		}
	case fsm.Reconnecting:
		if s.now >= s.redial {
			s.fail("still reconnecting at %v, past the redial time %v", s.now, s.redial)
		}
	case fsm.Connecting:
		if s.dialing && s.now >= s.dialAt+s.set.connectTimeout {
			s.fail("still dialling at %v, past the connect timeout of the dial begun at %v", s.now, s.dialAt)
		}
	}
}

// reference is a looplab/fsm FSM of fsm.Transitions in the initial state:
// the model the Machine's reported changes are checked against.
func reference() *lfsm.FSM {
	events := make(lfsm.Events, 0, 12)
	for _, t := range fsm.Transitions() {
		src := make([]string, len(t.From))
		for i, s := range t.From {
			src[i] = s.String()
		}
		events = append(events, lfsm.EventDesc{Name: t.Event.String(), Src: src, Dst: t.To.String()})
	}
	return lfsm.NewFSM(fsm.Connecting.String(), events, nil)
}
