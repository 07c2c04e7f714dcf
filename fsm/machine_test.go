package fsm

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/heartbeat-go/heartbeat/policy"
	"github.com/heartbeat-go/heartbeat/transport"
)

func TestSilentPeerIsDeadAtExactlyTheDeadTimeout(t *testing.T) {
	r := newRig(t, testConfig()).connected()
	var pings []time.Duration
	for r.m.State() != Reconnecting {
		for _, a := range r.wake() {
			if a.Kind == SendPing {
				pings = append(pings, r.now.Sub(t0))
			}
		}
	}
	// Idle pings at 5 s and 10 s; suspect at 10 s, probes every 1 s; dead at 15 s.
	want := []time.Duration{5, 10, 11, 12, 13, 14}
	if len(pings) != len(want) {
		t.Fatalf("pings at %v, want %v s", pings, want)
	}
	for i := range want {
		if pings[i] != want[i]*time.Second {
			t.Fatalf("pings at %v, want %v s", pings, want)
		}
	}
	dead, ok := change(r.all, Dead)
	if !ok || dead.Reason != ReasonUnanswered || !errors.Is(dead.Err, ErrPeerSilent) {
		t.Fatalf("dead change %+v", dead)
	}
	if got := r.now.Sub(t0); got != 15*time.Second {
		t.Fatalf("dead at %v, want exactly 15s", got)
	}
	if s, _ := change(r.all, Suspect); s.Reason != ReasonSilence {
		t.Fatalf("suspect reason %v", s.Reason)
	}
	if n := count(r.out, CloseTransport); n != 1 {
		t.Fatalf("%d close actions at death", n)
	}
}

func TestEvidenceClearsSuspicion(t *testing.T) {
	for _, k := range []transport.FrameKind{transport.Pong, transport.Ping, transport.Data} {
		r := newRig(t, testConfig()).connected()
		r.wakeUntil(Suspect, 10*time.Second)
		r.at(12*time.Second).frame(k, 0)
		if r.m.State() != Alive {
			t.Fatalf("%v in suspect: state %v", k, r.m.State())
		}
		if a, _ := change(r.out, Alive); a.Reason != ReasonEvidence {
			t.Fatalf("%v: reason %v", k, a.Reason)
		}
		// Silence is measured afresh from the frame: the next ping after 5 s idle.
		if got := r.m.Deadline().Sub(t0); got != 17*time.Second {
			t.Fatalf("%v: next deadline %v, want 17s", k, got)
		}
	}
}

func TestBusyConnectionSendsNoPings(t *testing.T) {
	r := newRig(t, testConfig()).connected()
	for s := 1; s <= 600; s++ {
		r.at(time.Duration(s)*time.Second).frame(transport.Data, 0)
	}
	if n := count(r.all, SendPing); n != 0 {
		t.Fatalf("%d pings on a connection with data every second", n)
	}
	if r.m.State() != Alive {
		t.Fatalf("state %v", r.m.State())
	}
}

func TestPongRoundTripReachesDetector(t *testing.T) {
	det := &spyDetector{Fixed: policy.Fixed{SuspectAfter: 10 * time.Second, DeadAfter: 15 * time.Second}}
	cfg := testConfig()
	cfg.Detector = det
	r := newRig(t, cfg).connected()
	acts := r.wake() // ping at 5 s
	if len(acts) != 1 || acts[0].Kind != SendPing || acts[0].Seq != 1 {
		t.Fatalf("want one ping #1, got %+v", acts)
	}
	r.at(5*time.Second+40*time.Millisecond).frame(transport.Pong, 1)
	r.at(6*time.Second).frame(transport.Pong, 7) // unsolicited or stale: evidence, no RTT
	if det.starts != 1 {
		t.Fatalf("detector started %d times", det.starts)
	}
	if len(det.rtts) != 2 || det.rtts[0] != 40*time.Millisecond || det.rtts[1] != 0 {
		t.Fatalf("rtts %v, want [40ms 0]", det.rtts)
	}
}

func TestPingIsAnsweredWithItsPayload(t *testing.T) {
	r := newRig(t, testConfig()).connected()
	payload := []byte("hello")
	acts := r.at(time.Second).step(Input{Kind: FrameIn, Frame: transport.Frame{Kind: transport.Ping, Payload: payload}})
	if len(acts) != 1 || acts[0].Kind != SendPong || string(acts[0].Payload) != "hello" {
		t.Fatalf("got %+v", acts)
	}
}

// A late wake-up (the process was suspended) must not convict a live peer:
// the machine probes first.
func TestLateWakeUpDoesNotConvictLivePeer(t *testing.T) {
	r := newRig(t, testConfig()).connected()
	// The first deadline is 5 s; the process sleeps until 60 s.
	acts := r.at(60 * time.Second).step(Input{Kind: DeadlineReached})
	if r.m.State() != Suspect {
		t.Fatalf("after a stall: %v, want suspect while probing", r.m.State())
	}
	if a, _ := change(acts, Suspect); a.Reason != ReasonLocalStall {
		t.Fatalf("suspect reason %v, want local stall", a.Reason)
	}
	if count(acts, SendPing) != 1 {
		t.Fatalf("no probe sent after the stall: %+v", acts)
	}
	// Conviction waits for the probe: max(dead − suspect, StallGrace) = 5 s.
	if got := r.m.Deadline().Sub(t0); got > 65*time.Second {
		t.Fatalf("deadline %v", got)
	}
	r.at(60*time.Second+80*time.Millisecond).frame(transport.Pong, r.m.seq)
	if r.m.State() != Alive {
		t.Fatalf("answered probe left the machine %v", r.m.State())
	}
}

// Without the guard, the same stall convicts at once: the test above is not
// vacuous.
func TestLateWakeUpConvictsWithoutStallGuard(t *testing.T) {
	cfg := testConfig()
	cfg.StallThreshold = -1
	r := newRig(t, cfg).connected()
	r.at(60 * time.Second).step(Input{Kind: DeadlineReached})
	if r.m.State() != Reconnecting {
		t.Fatalf("state %v, want a conviction (reconnecting)", r.m.State())
	}
}

func TestLateWakeUpStillConvictsDeadPeer(t *testing.T) {
	r := newRig(t, testConfig()).connected()
	r.at(60 * time.Second).step(Input{Kind: DeadlineReached})
	r.wakeUntil(Reconnecting, 70*time.Second) // a client passes through dead at once
	if got := r.now.Sub(t0); got != 65*time.Second {
		t.Fatalf("dead at %v, want 65s (stall + 5 s grace)", got)
	}
}

// A driver that is late at every wake (a throttled tab) gets one grace per
// silence, not one per wake: a dead peer is still convicted.
func TestPersistentLatenessStillConvicts(t *testing.T) {
	r := newRig(t, testConfig()).connected()
	for r.m.State() != Reconnecting {
		if r.now.Sub(t0) > 10*time.Minute {
			t.Fatalf("never convicted; in %v", r.m.State())
		}
		r.now = r.m.Deadline().Add(30 * time.Second) // every wake 30 s late
		r.step(Input{Kind: DeadlineReached})
	}
	if got := r.now.Sub(t0); got > 2*time.Minute {
		t.Fatalf("convicted only at %v", got)
	}
}

// A side that never pings cannot probe; after a stall it waits a whole dead
// timeout for the peer's own heartbeat.
func TestLateWakeUpListenOnlyWaitsDeadTimeout(t *testing.T) {
	cfg := testConfig()
	cfg.Interval = policy.Never{}
	r := newRig(t, cfg).connected()
	r.at(60 * time.Second).step(Input{Kind: DeadlineReached})
	if r.m.State() != Suspect || count(r.out, SendPing) != 0 {
		t.Fatalf("state %v, actions %+v", r.m.State(), r.out)
	}
	r.wakeUntil(Reconnecting, 80*time.Second)
	if got := r.now.Sub(t0); got != 75*time.Second {
		t.Fatalf("dead at %v, want 75s", got)
	}
}

func TestReconnectFollowsBackoffDelays(t *testing.T) {
	bo := &tableBackoff{delays: []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}}
	cfg := testConfig()
	cfg.Backoff = bo
	r := newRig(t, cfg)
	r.step(Input{Kind: Start})
	var dials []time.Duration
	dials = append(dials, 0)
	for r.m.State() != Closed {
		if r.m.State() == Connecting {
			r.step(Input{Kind: DialFailed, Err: errors.New("refused")})
			continue
		}
		if count(r.wake(), Dial) == 1 {
			dials = append(dials, r.now.Sub(t0))
		}
	}
	want := []time.Duration{0, time.Second, 3 * time.Second, 7 * time.Second}
	if len(dials) != len(want) {
		t.Fatalf("dials at %v, want %v", dials, want)
	}
	for i := range want {
		if dials[i] != want[i] {
			t.Fatalf("dials at %v, want %v", dials, want)
		}
	}
	for i, rt := range bo.retries {
		if rt.Attempt != i+1 || rt.Elapsed != dials[i] {
			t.Fatalf("retry %d: %+v (dials %v)", i, rt, dials)
		}
	}
	closed, _ := change(r.all, Closed)
	if closed.Reason != ReasonGaveUp || !errors.Is(closed.Err, policy.ErrGaveUp) || closed.From != Connecting {
		t.Fatalf("close %+v", closed)
	}
	if !r.m.Deadline().IsZero() {
		t.Fatal("closed machine has a deadline")
	}
}

func TestStableConnectionStartsNewStreak(t *testing.T) {
	bo := &tableBackoff{delays: []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}}
	cfg := testConfig()
	cfg.Backoff = bo
	r := newRig(t, cfg).connected()
	// Up 3 s (< StableAfter 5 s), then lost: the streak goes on.
	r.at(3 * time.Second).step(Input{Kind: PeerClosed})
	r.wake()
	r.step(Input{Kind: Connected})
	r.at(5 * time.Second).step(Input{Kind: PeerClosed})
	if got := bo.retries[len(bo.retries)-1].Attempt; got != 2 {
		t.Fatalf("attempt %d after a short-lived connection, want 2", got)
	}
	r.wake()
	r.step(Input{Kind: Connected}) // at 7 s
	r.at(20 * time.Second).step(Input{Kind: SendFailed, Err: errors.New("broken pipe")})
	last := bo.retries[len(bo.retries)-1]
	if last.Attempt != 1 || last.Elapsed != 0 {
		t.Fatalf("after a stable connection: %+v, want attempt 1 elapsed 0", last)
	}
	if a, _ := change(r.out, Dead); a.Reason != ReasonSendFailed {
		t.Fatalf("dead reason %v", a.Reason)
	}
}

func TestAdviceReachesBackoff(t *testing.T) {
	bo := &tableBackoff{delays: []time.Duration{time.Second}}
	cfg := testConfig()
	cfg.Backoff = bo
	r := newRig(t, cfg).connected()
	r.at(time.Second).step(Input{Kind: FrameIn, Frame: transport.Frame{Kind: transport.Ping, ReconnectWindow: 10 * time.Second}})
	r.at(2*time.Second).frame(transport.Pong, 0) // no advice: keeps the last
	r.at(3 * time.Second).step(Input{Kind: PeerClosed})
	if got := bo.retries[0].Advice; got != 10*time.Second {
		t.Fatalf("advice %v", got)
	}
}

// The server's timeout advice reaches a detector that takes it, which
// then waits longer before a verdict; the deadline the Machine reports
// follows at once.
func TestTimeoutAdviceReachesDetector(t *testing.T) {
	cfg := testConfig()
	det := &policy.Adaptive{}
	cfg.Detector = det
	r := newRig(t, cfg).connected()
	r.at(time.Second).frame(transport.Pong, 0)
	_, before := det.Timeouts()
	r.at(2 * time.Second).step(Input{Kind: FrameIn, Frame: transport.Frame{Kind: transport.Ping, TimeoutAdvice: 25 * time.Second}})
	if _, dead := det.Timeouts(); dead != 25*time.Second || before >= dead {
		t.Fatalf("dead timeout %v before the advice, %v after; want 25s after", before, dead)
	}
	r.wake() // suspect, probes…
	for r.m.State() != Dead && r.now.Before(t0.Add(time.Minute)) {
		r.wake()
	}
	if got := r.now.Sub(t0.Add(2 * time.Second)); got < 25*time.Second {
		t.Fatalf("dead %v after the last evidence, want at least the advised 25s", got)
	}
}

func TestConnectTimeout(t *testing.T) {
	r := newRig(t, testConfig())
	r.step(Input{Kind: Start})
	r.wake()
	if r.now.Sub(t0) != DefaultConnectTimeout || r.m.State() != Reconnecting {
		t.Fatalf("at %v in %v", r.now.Sub(t0), r.m.State())
	}
	a, _ := change(r.out, Reconnecting)
	if a.Reason != ReasonConnectTimeout || !errors.Is(a.Err, ErrConnectTimeout) || a.Delay != time.Second {
		t.Fatalf("change %+v", a)
	}
}

func TestServerDeadIsFinal(t *testing.T) {
	cfg := testConfig()
	cfg.Role = Server
	cfg.Backoff = nil
	r := newRig(t, cfg).connected()
	r.wakeUntil(Dead, time.Minute)
	if !r.m.Deadline().IsZero() {
		t.Fatalf("server in dead still has a deadline %v", r.m.Deadline())
	}
	r.at(time.Hour).frame(transport.Pong, 0)
	if r.m.State() != Dead || len(r.out) != 0 {
		t.Fatalf("dead server reacted to a frame: %v %+v", r.m.State(), r.out)
	}
	r.step(Input{Kind: CloseRequested})
	if r.m.State() != Closed || count(r.out, CloseTransport) != 0 {
		t.Fatalf("close of a dead server: %v %+v", r.m.State(), r.out)
	}
}

func TestServerBindFailureIsDead(t *testing.T) {
	cfg := testConfig()
	cfg.Role = Server
	r := newRig(t, cfg)
	r.step(Input{Kind: Start})
	r.step(Input{Kind: DialFailed, Err: errors.New("handshake")})
	if a, _ := change(r.out, Dead); r.m.State() != Dead || a.Event != EvLost {
		t.Fatalf("state %v, change %+v", r.m.State(), a)
	}
}

func TestCloseFromEveryState(t *testing.T) {
	reach := map[State]func(r *rig){
		Connecting:   func(r *rig) { r.step(Input{Kind: Start}) },
		Alive:        func(r *rig) { r.connected() },
		Suspect:      func(r *rig) { r.connected().wakeUntil(Suspect, time.Minute) },
		Reconnecting: func(r *rig) { r.connected().step(Input{Kind: PeerClosed}) },
	}
	for s, get := range reach {
		r := newRig(t, testConfig())
		get(r)
		if r.m.State() != s {
			t.Fatalf("setup reached %v, want %v", r.m.State(), s)
		}
		r.step(Input{Kind: CloseRequested})
		c, _ := change(r.out, Closed)
		if r.m.State() != Closed || c.Reason != ReasonUserClose || !errors.Is(c.Err, ErrClosed) {
			t.Fatalf("close from %v: %v %+v", s, r.m.State(), c)
		}
		wantClose := s != Reconnecting
		if got := count(r.out, CloseTransport) == 1; got != wantClose {
			t.Fatalf("close from %v: transport closed %v, want %v", s, got, wantClose)
		}
		if !r.m.Deadline().IsZero() {
			t.Fatalf("closed from %v with a deadline", s)
		}
		// Closed is absorbing.
		for k := Start; k <= CloseRequested; k++ {
			if acts := r.at(time.Hour).step(Input{Kind: k}); len(acts) != 0 || r.m.State() != Closed {
				t.Fatalf("closed machine reacted to %v: %+v", k, acts)
			}
		}
	}
}

func TestPingFloodCloses(t *testing.T) {
	r := newRig(t, testConfig()).connected()
	pongs := 0
	for i := 0; i < 1000 && r.m.State() == Alive; i++ {
		r.at(time.Second + time.Duration(i)*time.Millisecond)
		pongs += count(r.step(Input{Kind: FrameIn, Frame: transport.Frame{Kind: transport.Ping}}), SendPong)
	}
	dead, ok := change(r.all, Dead)
	if !ok || dead.Reason != ReasonPingFlood || !errors.Is(dead.Err, ErrPingFlood) {
		t.Fatalf("flood not stopped: %+v", dead)
	}
	// 1 ping/ms against 1 per 100 ms with a burst of 50: about 55 get through.
	if pongs < DefaultPingBurst || pongs > DefaultPingBurst+10 {
		t.Fatalf("%d pongs before the flood was stopped", pongs)
	}
}

func TestQueuedPingBurstIsTolerated(t *testing.T) {
	r := newRig(t, testConfig()).connected()
	// A 4 s retransmission stall delivers 40 queued pings at once, then the
	// peer goes on pinging every 150 ms for an hour.
	for range 40 {
		r.at(5*time.Second).frame(transport.Ping, 0)
	}
	for i := range 24000 {
		r.at(5*time.Second+time.Duration(i)*150*time.Millisecond).frame(transport.Ping, 0)
	}
	if r.m.State() != Alive {
		t.Fatalf("legitimate pings convicted as a flood: %v", r.m.State())
	}
}

func TestFloodEnforcementCanBeDisabled(t *testing.T) {
	cfg := testConfig()
	cfg.PingBurst = -1
	r := newRig(t, cfg).connected()
	for range 1000 {
		r.at(time.Second).frame(transport.Ping, 0)
	}
	if r.m.State() != Alive {
		t.Fatalf("state %v", r.m.State())
	}
}

func TestStaleInputsAreIgnored(t *testing.T) {
	r := newRig(t, testConfig()).connected()
	r.at(time.Second).step(Input{Kind: PeerClosed})
	if r.m.State() != Reconnecting {
		t.Fatalf("state %v", r.m.State())
	}
	for _, in := range []Input{
		{Kind: FrameIn, Frame: transport.Frame{Kind: transport.Ping}},
		{Kind: Connected}, {Kind: DialFailed}, {Kind: SendFailed}, {Kind: PeerClosed}, {Kind: Start},
	} {
		if acts := r.step(in); len(acts) != 0 || r.m.State() != Reconnecting {
			t.Fatalf("%v in reconnecting: %+v", in.Kind, acts)
		}
	}
	r.wake()
	r.step(Input{Kind: Connected})
	if acts := r.step(Input{Kind: Connected}); len(acts) != 0 {
		t.Fatalf("second Connected: %+v", acts)
	}
}

func TestTimeNeverRunsBackwards(t *testing.T) {
	r := newRig(t, testConfig()).connected()
	r.at(4*time.Second).frame(transport.Data, 0)
	r.at(time.Second).frame(transport.Data, 0) // earlier than the last input
	if got := r.m.Deadline().Sub(t0); got != 9*time.Second {
		t.Fatalf("deadline %v, want 9s (the earlier time taken as 4 s)", got)
	}
}

func TestUnknownInputPanicsNamingIt(t *testing.T) {
	r := newRig(t, testConfig()).connected()
	defer func() {
		if msg, _ := recover().(string); !strings.Contains(msg, "unknown input kind 42 in state alive") {
			t.Fatalf("panic %q", msg)
		}
	}()
	r.m.Step(t0, Input{Kind: 42}, nil)
}

func TestIllegalTransitionPanicsNamingIt(t *testing.T) {
	m, _ := NewMachine(testConfig())
	defer func() {
		if msg, _ := recover().(string); !strings.Contains(msg, "illegal transition: event convict in state connecting") {
			t.Fatalf("panic %q", msg)
		}
	}()
	m.transition(nil, EvConvict, ReasonUnanswered, nil)
}

// TestRandomInputsKeepInvariants steps random inputs at random times and
// checks on every step (through the rig) that transitions are declared and
// the deadline lies ahead; and that pings never come closer than the minimum
// interval.
func TestRandomInputsKeepInvariants(t *testing.T) {
	kinds := []InputKind{Connected, DialFailed, FrameIn, SendFailed, PeerClosed, DeadlineReached, DeadlineReached, DeadlineReached}
	frames := []transport.FrameKind{transport.Ping, transport.Pong, transport.Data}
	for seed := range uint64(200) {
		rng := rand.New(rand.NewPCG(seed, 1))
		cfg := testConfig()
		if seed%2 == 1 {
			cfg.Role = Server
		}
		r := newRig(t, cfg)
		r.step(Input{Kind: Start})
		var last time.Time
		for range 300 {
			if dl := r.m.Deadline(); !dl.IsZero() && rng.IntN(2) == 0 {
				r.now = dl.Add(time.Duration(rng.Int64N(int64(3 * time.Second))))
			} else {
				r.now = r.now.Add(time.Duration(rng.Int64N(int64(4 * time.Second))))
			}
			in := Input{Kind: kinds[rng.IntN(len(kinds))]}
			in.Frame.Kind = frames[rng.IntN(len(frames))]
			in.Frame.Seq = r.m.seq
			for _, a := range r.step(in) {
				if a.Kind == SendPing {
					if !last.IsZero() && r.now.Sub(last) < DefaultMinPingInterval {
						t.Fatalf("seed %d: pings %v apart", seed, r.now.Sub(last))
					}
					last = r.now
				}
			}
		}
	}
}

func TestConfigValidation(t *testing.T) {
	bad := []struct {
		name string
		cfg  Config
		want string
	}{
		{"role", Config{Role: 7}, "neither client nor server"},
		{"connect timeout", Config{ConnectTimeout: -time.Second}, "connect timeout -1s must be positive"},
		{"stable", Config{StableAfter: -1}, "stable-after period"},
		{"grace", Config{StallGrace: -1}, "stall grace"},
		{"min ping", Config{MinPingInterval: -1}, "minimum ping interval"},
		{"detector", Config{Detector: &policy.Fixed{SuspectAfter: 10 * time.Second, DeadAfter: time.Second}}, "dead timeout 1s must not be shorter than the suspect timeout 10s"},
		{"zero detector", Config{Detector: &policy.Fixed{}}, "suspect timeout 0s must be positive"},
		{"custom detector", Config{Detector: &badDetector{}}, "need 0 < suspect <= dead"},
		{"suspect before a ping", Config{Detector: &policy.Fixed{SuspectAfter: time.Second, DeadAfter: 2 * time.Second}, Interval: &policy.Idle{Every: 5 * time.Second}}, "must be longer than the ping interval"},
		{"bad backoff", Config{Backoff: &policy.Constant{Delay: -time.Second}}, "delay -1s must not be negative"},
	}
	for _, tc := range bad {
		_, err := NewMachine(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
		// A policy's own complaint stays reachable with errors.Is.
		policyErr := strings.Contains(err.Error(), "policy: ")
		if policyErr != errors.Is(err, policy.ErrInvalidConfig) {
			t.Errorf("%s: %v: wraps policy.ErrInvalidConfig %v", tc.name, err, !policyErr)
		}
	}
	m, err := NewMachine(Config{})
	if err != nil || m.State() != Connecting || m.Role() != Client || !m.Deadline().IsZero() {
		t.Fatalf("zero config: %v %v", m, err)
	}
}

// TestEveryDeclaredEdgeIsTaken runs scenarios that together take every edge
// of the declaration.
func TestEveryDeclaredEdgeIsTaken(t *testing.T) {
	taken := map[[2]State]bool{}
	events := map[Event]bool{}
	run := func(role Role, script func(r *rig)) {
		cfg := testConfig()
		cfg.Role = role
		cfg.Backoff = &policy.Constant{Delay: time.Second, MaxAttempts: 1}
		r := newRig(t, cfg)
		script(r)
		for e := range r.edges {
			taken[e] = true
		}
		for _, a := range r.all {
			if a.Kind == StateChanged {
				events[a.Event] = true
			}
		}
	}
	closeNow := func(r *rig) { r.step(Input{Kind: CloseRequested}) }
	run(Client, func(r *rig) { r.step(Input{Kind: Start}); closeNow(r) })
	run(Client, func(r *rig) { r.step(Input{Kind: Start}); r.step(Input{Kind: DialFailed}); closeNow(r) })
	run(Client, func(r *rig) { r.connected(); closeNow(r) })
	run(Client, func(r *rig) { r.connected().wakeUntil(Suspect, time.Minute); closeNow(r) })
	run(Client, func(r *rig) { r.connected().wakeUntil(Suspect, time.Minute); r.frame(transport.Data, 0) })
	run(Client, func(r *rig) {
		r.connected().wakeUntil(Suspect, time.Minute)
		r.step(Input{Kind: PeerClosed})
		closeNow(r)
	})
	run(Client, func(r *rig) {
		r.connected().wakeUntil(Reconnecting, time.Minute)
		r.wake()
		r.step(Input{Kind: DialFailed}) // second attempt: give up from connecting
	})
	run(Client, func(r *rig) {
		r.connected().wakeUntil(Reconnecting, time.Minute)
		r.wake()
		r.step(Input{Kind: Connected})
		r.at(time.Minute + time.Second).step(Input{Kind: SendFailed}) // short-lived: give up from dead
	})
	run(Server, func(r *rig) { r.step(Input{Kind: Start}); r.step(Input{Kind: DialFailed}); closeNow(r) })
	run(Server, func(r *rig) { r.connected().step(Input{Kind: PeerClosed}) })
	leave := func(r *rig) { r.step(Input{Kind: PeerClosed, Err: ErrPeerLeft}) }
	run(Server, func(r *rig) { leave(r.connected()) })
	run(Server, func(r *rig) { r.connected().wakeUntil(Suspect, time.Minute); leave(r) })
	run(Client, func(r *rig) { leave(r.connected()); closeNow(r) })
	run(Client, func(r *rig) { r.connected().wakeUntil(Suspect, time.Minute); leave(r); closeNow(r) })
	for _, ev := range declaration() {
		for _, src := range ev.Src {
			edge := [2]State{mustState(src), mustState(ev.Dst)}
			if !taken[edge] {
				t.Errorf("edge %s --%s--> %s never taken", src, ev.Name, ev.Dst)
			}
		}
		if !events[mustEvent(ev.Name)] {
			t.Errorf("event %s never taken", ev.Name)
		}
	}
}

// badDetector is a user's detector with nonsense timeouts and no Validate.
type badDetector struct{}

func (badDetector) Start(time.Time)                  {}
func (badDetector) Observe(time.Time, time.Duration) {}
func (badDetector) Timeouts() (time.Duration, time.Duration) {
	return 0, time.Second
}

func TestHugeDurationsSaturate(t *testing.T) {
	const forever = time.Duration(math.MaxInt64)
	cfg := testConfig()
	cfg.Detector = &policy.Fixed{SuspectAfter: 10 * time.Second, DeadAfter: forever}
	cfg.Backoff = &policy.Constant{Delay: forever}
	cfg.ConnectTimeout = forever
	cfg.MinPingInterval = forever
	r := newRig(t, cfg).connected()
	r.at(time.Hour).step(Input{Kind: DeadlineReached})
	if r.m.State() != Suspect {
		t.Fatalf("an hour into a ~292-year dead timeout: %v, want suspect", r.m.State())
	}
	r.at(2*time.Hour).frame(transport.Ping, 0)
	r.step(Input{Kind: PeerClosed})
	if r.m.State() != Reconnecting || !r.m.Deadline().IsZero() {
		t.Fatalf("a ~292-year backoff: %v, deadline %v", r.m.State(), r.m.Deadline())
	}
}

func TestRedialsAreAtLeastTenMillisecondsApart(t *testing.T) {
	cfg := testConfig()
	cfg.Backoff = &policy.Constant{}
	r := newRig(t, cfg)
	r.step(Input{Kind: Start})
	for range 5 {
		r.step(Input{Kind: DialFailed})
		if r.m.State() != Reconnecting {
			t.Fatalf("a zero backoff redialled at the same instant: %v", r.m.State())
		}
		r.wake()
		if got := r.now.Sub(t0); got%(10*time.Millisecond) != 0 || r.m.State() != Connecting {
			t.Fatalf("redial at %v in %v", got, r.m.State())
		}
	}
	if got := r.now.Sub(t0); got != 50*time.Millisecond {
		t.Fatalf("fifth redial at %v, want 50ms", got)
	}
}

// Pings the peer sent at the allowed rate while our own process stood
// still arrive together when we wake; they are not a flood.
func TestPingsQueuedDuringOurStallAreNotAFlood(t *testing.T) {
	r := newRig(t, testConfig()).connected()
	r.at(20 * time.Second).step(Input{Kind: DeadlineReached}) // due at 5 s: a stall
	for range 200 {                                           // 20 s of pings every 100 ms
		r.frame(transport.Ping, 0)
	}
	if r.m.State() == Reconnecting {
		t.Fatal("queued pings taken for a flood")
	}
	// The credit is for the stall only: a real flood right after is caught.
	for i := range 1000 {
		r.at(22*time.Second+time.Duration(i)*time.Millisecond).frame(transport.Ping, 0)
	}
	if a, ok := change(r.all, Dead); !ok || a.Reason != ReasonPingFlood {
		t.Fatalf("flood after the stall not caught: %+v", a)
	}
}

// A pause too short to be noticed as a stall still queues the peer's pings;
// the flood meter counts from the previous step, so they are not a flood.
func TestPingsQueuedDuringAnUnnoticedPauseAreNotAFlood(t *testing.T) {
	r := newRig(t, testConfig()).connected()
	r.at(4500 * time.Millisecond) // before the 5 s deadline: no stall
	for range 90 {                // 4.5 s of pings every 100 ms, plus the burst
		r.frame(transport.Ping, 0)
	}
	if r.m.State() != Alive {
		t.Fatalf("queued pings taken for a flood: %v", r.m.State())
	}
}

func TestServerRoleBuildsNoBackoff(t *testing.T) {
	m, err := NewMachine(Config{Role: Server})
	if err != nil {
		t.Fatal(err)
	}
	if m.bo != nil {
		t.Fatalf("the server role holds a backoff %T it never uses", m.bo)
	}
}
