package proptest

import (
	"flag"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/policy"
	"github.com/heartbeat-go/heartbeat/transport"
)

// M4: every input sequence on abstracted time, for a small configuration.
//
// Time moves in whole units u. Timeouts are a few units, so every deadline
// is a whole number of units after the epoch and the machine's state,
// with its times taken relative to now and clamped to a horizon past
// which no timer reaches, is finite. From every state the exploration
// tries each input now and one unit later, a wake-up exactly at the
// deadline and one late enough to count as a stall, checks each step
// against the reference model (M3) and the per-step invariants, and from
// every live state checks that silence ends in a verdict within the bound
// (C1). States are told apart by all of the Machine's fields, read by
// reflection, so the count is of distinct machine states.

const unit = time.Second

func smallConfig(role fsm.Role) fsm.Config {
	return fsm.Config{
		Role:            role,
		Detector:        &policy.Fixed{SuspectAfter: 2 * unit, DeadAfter: 3 * unit},
		Interval:        &policy.Idle{Every: unit, Probe: unit},
		Backoff:         &policy.Constant{Delay: unit, MaxAttempts: 2},
		ConnectTimeout:  2 * unit,
		StableAfter:     2 * unit,
		StallThreshold:  unit,
		StallGrace:      unit,
		MinPingInterval: unit,
		PingBurst:       1,
	}
}

// node is one explored state: the machine and the reference model beside
// it, and the inputs that led there.
type node struct {
	s      *model
	state  string // the reference's state (one looplab FSM serves every node)
	depth  int
	parent *node
	input  string
}

func (n *node) clone() *node {
	s := *n.s
	m := *n.s.m // a Machine is a plain value; its policies here keep no state
	s.m = &m
	s.ref.SetState(n.state)
	return &node{s: &s, depth: n.depth + 1, parent: n}
}

func (n *node) path() string {
	var steps []string
	for p := n; p.parent != nil; p = p.parent {
		steps = append(steps, p.input)
	}
	slices.Reverse(steps)
	return strings.Join(steps, "\n  ")
}

// timePoints lists the Machine's fields that hold moments (as opposed to
// configured durations): in a fresh machine they are 0, unset or never.
func timePoints(m *fsm.Machine) map[int]bool {
	v := reflect.ValueOf(m).Elem()
	out := map[int]bool{}
	for i := range v.NumField() {
		f := v.Field(i)
		if f.Kind() != reflect.Int64 || f.Type().Name() != "tick" {
			continue
		}
		if x := f.Int(); x == 0 || x == math.MinInt64 || x == math.MaxInt64 {
			out[i] = true
		}
	}
	return out
}

const horizon = 5 * int64(unit)

func rel(x, now int64) string {
	switch {
	case x == math.MinInt64:
		return "unset"
	case x == math.MaxInt64:
		return "never"
	}
	d := x - now
	return fmt.Sprint(min(max(d, -horizon), horizon) / int64(unit))
}

// key is the state's fingerprint: every field of the Machine but the
// epoch, the policies and the ping sequence number, with moments relative
// to now, and the reference model's own clocks likewise.
func key(n *node, points map[int]bool) string {
	var b strings.Builder
	v := reflect.ValueOf(n.s.m).Elem()
	now := int64(n.s.now)
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.Int64:
			if points[i] {
				b.WriteString(rel(f.Int(), now))
			} else {
				fmt.Fprint(&b, f.Int())
			}
		case reflect.Int32, reflect.Int, reflect.Int8:
			fmt.Fprint(&b, f.Int())
		case reflect.Uint8, reflect.Bool:
			fmt.Fprint(&b, f)
		default:
			continue // epoch, policies, seq
		}
		b.WriteByte(',')
	}
	s := n.s
	for _, x := range []time.Duration{s.dialAt, s.redial, s.le, s.stall, s.ping} {
		if x < 0 {
			b.WriteString("-,")
			continue
		}
		b.WriteString(rel(int64(x), now) + ",")
	}
	fmt.Fprint(&b, s.started, s.dialing, s.connUp)
	return b.String()
}

type exploreInput struct {
	name  string
	delay time.Duration // before the input; -1: at the deadline, -2: late
	in    fsm.Input
}

func alphabet() []exploreInput {
	base := []exploreInput{
		{name: "start", in: fsm.Input{Kind: fsm.Start}},
		{name: "connected", in: fsm.Input{Kind: fsm.Connected}},
		{name: "dial failed", in: fsm.Input{Kind: fsm.DialFailed, Err: errRefused}},
		{name: "data", in: fsm.Input{Kind: fsm.FrameIn, Frame: transport.Frame{Kind: transport.Data}}},
		{name: "ping", in: fsm.Input{Kind: fsm.FrameIn, Frame: transport.Frame{Kind: transport.Ping, Payload: []byte{1}}}},
		{name: "pong", in: fsm.Input{Kind: fsm.FrameIn, Frame: transport.Frame{Kind: transport.Pong}}},
		{name: "send failed", in: fsm.Input{Kind: fsm.SendFailed, Err: errBroken}},
		{name: "peer closed", in: fsm.Input{Kind: fsm.PeerClosed, Err: errPeerGone}},
		{name: "close", in: fsm.Input{Kind: fsm.CloseRequested}},
	}
	var out []exploreInput
	for _, e := range base {
		out = append(out, e)
		e.delay = unit
		out = append(out, e)
	}
	return append(out,
		exploreInput{name: "wake", delay: -1, in: fsm.Input{Kind: fsm.DeadlineReached}},
		exploreInput{name: "late wake", delay: -2, in: fsm.Input{Kind: fsm.DeadlineReached}},
	)
}

// apply steps n with e; false if e is impossible here (no deadline).
func apply(n *node, e exploreInput) bool {
	s := n.s
	switch e.delay {
	case -1, -2:
		dl := s.m.Deadline()
		if dl.IsZero() {
			return false
		}
		s.now = max(s.now, dl.Sub(t0))
		if e.delay == -2 {
			s.now += s.set.stallThreshold + unit
		}
	default:
		s.now += e.delay
	}
	in := e.in
	if in.Kind == fsm.FrameIn && in.Frame.Kind == transport.Pong {
		in.Frame.Seq = s.seq
	}
	prev := s.m.Deadline()
	before := s.m.State()
	n.input = fmt.Sprintf("%-8v %s", s.now, e.name)
	s.step(in)
	n.state = s.ref.Current()
	now := t0.Add(s.now)
	acts := s.acts
	if dl := s.m.Deadline(); !dl.IsZero() && !dl.After(now) {
		s.fail("[L1] the next deadline %v is not after now", dl.Sub(t0))
	}
	if in.Kind == fsm.DeadlineReached && prev.Equal(now) && len(acts) == 0 && before != fsm.Closed {
		s.fail("[L2] woken at its deadline in %v, the machine did nothing", before)
	}
	return true
}

// silence wakes n on time, with no other input, until the peer is
// declared dead, and checks that happens within the bound (C1).
func silence(n *node) {
	s := n.s
	st := s.m.State()
	if st != fsm.Alive && st != fsm.Suspect {
		return
	}
	su, d := s.timeouts()
	bound := s.le + d
	if s.stall >= 0 {
		bound = max(bound, s.stall+max(d-su, s.set.stallGrace))
	}
	for range 64 {
		if !apply(n, exploreInput{name: "wake", delay: -1, in: fsm.Input{Kind: fsm.DeadlineReached}}) {
			s.fail("[C1] no deadline while %v", s.m.State())
		}
		if st := s.m.State(); st != fsm.Alive && st != fsm.Suspect {
			if s.now > bound {
				s.fail("[C1] silent since %v, dead only at %v, past %v", s.le, s.now, bound)
			}
			return
		}
	}
	s.fail("[C1] 64 wake-ups of silence and still %v", s.m.State())
}

func explore(t *testing.T, role fsm.Role, depth int) (states, steps int, closed bool) {
	cfg := smallConfig(role)
	m, err := fsm.NewMachine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	points := timePoints(m)
	root := &node{state: fsm.Connecting.String(), s: &model{
		m:     m,
		det:   cfg.Detector,
		set:   resolve(cfg),
		ref:   reference(),
		scale: 3 * unit,
		le:    -1, stall: -1, ping: -1,
		quiet: true,
	}}
	seen := map[string]bool{key(root, points): true}
	frontier := []*node{root}
	inputs := alphabet()
	cut := false // some state had successors left unexplored
	for len(frontier) > 0 {
		var next []*node
		for _, n := range frontier {
			if n.depth == depth {
				cut = true
				continue
			}
			for _, e := range inputs {
				c := n.clone()
				c.s.fatal = func(format string, args ...any) {
					t.Fatalf("%s\ninputs (time, input):\n  %s", fmt.Sprintf(format, args...), c.path())
				}
				if !apply(c, e) {
					continue
				}
				steps++
				k := key(c, points)
				if seen[k] {
					continue
				}
				seen[k] = true
				silence(c.clone())
				next = append(next, c)
			}
		}
		frontier = next
	}
	return len(seen), steps, !cut
}

// The default depth is well past where both roles' state spaces close (the
// client's after 15 inputs, the server's sooner), so the default run
// reaches every state of the small configuration.
var exploreDepth = flag.Int("proptest.depth", 32, "longest input sequence the exhaustive check (M4) explores")

func TestExhaustiveSmallConfiguration(t *testing.T) {
	depth := *exploreDepth
	if testing.Short() || raceBuild {
		depth = min(depth, 7)
	}
	for _, role := range []fsm.Role{fsm.Client, fsm.Server} {
		t.Run(role.String(), func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			states, steps, all := explore(t, role, depth)
			reach := fmt.Sprintf("within %d inputs", depth)
			if all {
				reach = "(every reachable state)"
			}
			t.Logf("%v: %d distinct states %s, %d steps checked, in %v", role, states, reach, steps, time.Since(start).Round(time.Millisecond))
		})
	}
}
