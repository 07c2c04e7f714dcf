package proptest

import (
	"fmt"
	"math/rand/v2"
	"time"

	"pgregory.net/rapid"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/policy"
	"github.com/heartbeat-go/heartbeat/sim/network"
	"github.com/heartbeat-go/heartbeat/transport"
)

// machineRun is what the world-based properties share: how to build the
// configuration under test and what it promises.
type machineRun struct {
	newConfig func(r *rand.Rand) fsm.Config
	peer      PeerFunc
	net       policy.NetworkBound
	detection time.Duration // C1; 0: not checked
	noSuspect bool
	lifetime  time.Duration // A1, A2: how long one healthy connection must live; 0: not checked
	interval  *IntervalPromise
	backoff   *BackoffPromise

	// detectorOnly: our side never pings and the peer sends application
	// messages at least every net.Heartbeat on a healthy link (CheckDetector).
	detectorOnly bool
}

// built is one drawn instance of the configuration, wired to an observer.
type built struct {
	cfg   fsm.Config
	set   settings
	obs   *observer
	scale time.Duration // the configuration's characteristic time: its dead timeout
	long  time.Duration // how long a busy stretch may last: scale, at most 10 min
}

func (r *machineRun) build(t *rapid.T, sel Select) built {
	seed := rapid.Uint64().Draw(t, "policy seed")
	mk := func() fsm.Config {
		cfg := withDefaults(r.newConfig(rand.New(rand.NewPCG(seed, ^seed))), rand.New(rand.NewPCG(^seed, seed)))
		if r.detectorOnly {
			cfg.Interval = policy.Never{}
		}
		return cfg
	}
	cfg := mk()
	twin := mk().Detector
	var obs *observer
	cd := &checkedDetector{d: cfg.Detector, twin: twin, fail: func(id, f string, a ...any) { obs.fail(id, f, a...) }}
	cfg.Detector = cd
	obs = newObserver(sel, cd)
	if cfg.Backoff != nil {
		cfg.Backoff = &watchedBackoff{b: cfg.Backoff, obs: obs}
	}
	set := resolve(cfg)
	set.inflight = r.net.MaxRTT
	obs.spacing = set.minPing
	if r.interval != nil {
		obs.spacing = max(obs.spacing, r.interval.Min)
		obs.maxIdle = r.interval.Max
	}
	obs.bo = r.backoff
	obs.a2 = r.noSuspect
	_, d := cd.d.Timeouts()
	scale := r.detection
	if scale == 0 {
		scale = d
	}
	if r.detectorOnly {
		scale = max(scale, r.net.Gap())
	}
	scale = min(max(scale, 10*time.Millisecond), time.Hour)
	return built{cfg: cfg, set: set, obs: obs, scale: scale, long: min(scale, 10*time.Minute)}
}

// start makes the world for sc and runs it.
func (r *machineRun) start(t *rapid.T, b built, sc scenario, framesFirst bool) *world {
	// F1's premise: the delay varies by less than the peer's ping burst,
	// and no ping arrives twice.
	b.obs.flood = b.set.pingBurst > 0
	lo, hi := time.Duration(1<<62), time.Duration(0)
	for _, p := range sc.phases {
		l, h, once := delaySpan(p.in)
		lo, hi = min(lo, l), max(hi, h+p.stallUntil-p.stallFrom)
		if !once {
			b.obs.flood = false
		}
	}
	if hi-lo > time.Duration(b.set.pingBurst-1)*floodInterval(b.set.minPing) {
		b.obs.flood = false
	}
	w, err := newWorld(t.Fatalf, b.cfg, sc, r.peer, b.obs)
	if err != nil {
		t.Fatalf("[%s %s] proptest: the configuration under test is invalid: %v", V1, invariantName(V1), err)
	}
	w.set.inflight = b.set.inflight
	w.framesFirst = framesFirst
	w.run()
	return w
}

func drawDur(t *rapid.T, label string, lo, hi time.Duration) time.Duration {
	if hi-lo < time.Millisecond {
		return lo
	}
	n := rapid.Int64Range(0, int64((hi-lo)/time.Millisecond)).Draw(t, label)
	return lo + time.Duration(n)*time.Millisecond
}

// delaySpan bounds the one-way delay of a direction: the least and the
// most a frame that arrives can take, and whether each frame arrives at
// most once. A stream that loses transmissions repeats them after
// retransmission timeouts, so its most is unbounded.
func delaySpan(d network.Dir) (lo, hi time.Duration, once bool) {
	l := d.Latency
	switch l.Dist {
	case network.Edge, network.Uniform:
		lo, hi = max(l.Mean-l.Jitter, 0), l.Mean+l.Jitter
	default:
		lo, hi = 0, l.Max
	}
	if l.Max > 0 {
		hi = min(hi, l.Max)
	}
	if d.Loss.Rate > 0 && d.Delivery == network.Stream {
		hi = 1 << 62
	}
	return lo, hi + d.ReorderDelay, d.Duplicate == 0
}

// edge is a delay uniform on [lo, hi] that is hi one frame in four.
func edge(lo, hi time.Duration) network.Latency {
	return network.Latency{Dist: network.Edge, Mean: (lo + hi) / 2, Jitter: (hi - lo) / 2, Max: hi}
}

// drawDir draws the rest of a degraded direction on top of base (its
// delay range [lo, hi] and its loss rate): its delivery, its delay shape
// (of those the simulator's profiles use), loss in bursts and, for
// datagrams, duplicates and reordering.
func drawDir(t *rapid.T, name string, base network.Dir, lo, hi, scale time.Duration) network.Dir {
	d := base
	if rapid.Bool().Draw(t, name+" datagram") {
		d.Delivery = network.Datagram
	}
	switch rapid.IntRange(0, 2).Draw(t, name+" delay shape") {
	case 1:
		d.Latency = network.Latency{Dist: network.LogNormal, Mean: lo + (hi-lo)/4, Shape: 1, Max: hi}
	case 2:
		if lo > 0 {
			d.Latency = network.Latency{Dist: network.Pareto, Mean: lo, Shape: 1.5, Max: hi}
		}
	}
	if burst := rapid.IntRange(0, 20).Draw(t, name+" loss burst"); burst > 1 && d.Loss.Rate > 0 {
		d.Loss.Burst = float64(burst)
		d.Loss.Rate = min(d.Loss.Rate, d.Loss.Burst/(d.Loss.Burst+1)-0.01)
	}
	if d.Delivery == network.Datagram {
		d.Duplicate = float64(rapid.IntRange(0, 50).Draw(t, name+" duplicate %")) / 100
		d.Reorder = float64(rapid.IntRange(0, 50).Draw(t, name+" reorder %")) / 100
		if d.Reorder > 0 {
			d.ReorderDelay = drawDur(t, name+" reorder delay", time.Millisecond, scale/2)
		}
	}
	return d
}

// drawPhase draws one link phase starting at at. A healthy phase is a
// stream that loses nothing, its delay within the promise's bound.
func (r *machineRun) drawPhase(t *rapid.T, b built, name string, at time.Duration, healthy bool) phase {
	p := phase{at: at, healthy: healthy}
	if healthy {
		maxDelay := r.net.MaxRTT / 2
		if r.detectorOnly {
			maxDelay = r.net.MaxRTT // one way: the peer's own messages are the evidence
		}
		minDelay := drawDur(t, name+" min delay", 0, maxDelay)
		p.in = network.Dir{Latency: edge(minDelay, maxDelay)}
		p.out = p.in
		p.dialMax = min(r.net.MaxRTT, b.set.connectTimeout/2)
	} else {
		loss := float64(rapid.IntRange(0, 99).Draw(t, name+" loss %")) / 100
		minDelay := drawDur(t, name+" min delay", 0, b.scale/2)
		maxDelay := drawDur(t, name+" max delay", minDelay, minDelay+b.scale)
		// The plainest degraded link first (independent loss on a stream,
		// the same both ways, no stall), so that a counterexample shrinks
		// to it when the rest of the model does not matter.
		base := network.Dir{Latency: edge(minDelay, maxDelay), Loss: network.Loss{Rate: loss}}
		p.in, p.out = base, base
		if rapid.IntRange(0, 2).Draw(t, name+" more of the network model") > 0 {
			p.in = drawDir(t, name, base, minDelay, maxDelay, b.scale)
			p.out = p.in
			if rapid.IntRange(0, 3).Draw(t, name+" asymmetric") == 0 {
				p.out = drawDir(t, name+" out", base, minDelay, maxDelay, b.scale)
			}
			if rapid.IntRange(0, 3).Draw(t, name+" stalls") == 0 {
				p.stallFrom = at + drawDur(t, name+" stall after", 0, 3*b.long)
				p.stallUntil = p.stallFrom + drawDur(t, name+" stall length", 0, 2*b.scale)
			}
		}
		p.dialFailPct = rapid.IntRange(0, 100).Draw(t, name+" dial failure %")
		p.dialMax = drawDur(t, name+" max dial time", 0, 2*b.set.connectTimeout)
		p.sendFailPct = rapid.IntRange(0, 20).Draw(t, name+" send failure %")
	}
	switch {
	case r.detectorOnly && healthy:
		p.dataMin, p.dataMax = time.Millisecond, r.net.Heartbeat
	case r.detectorOnly:
		p.dataMin = b.scale / 100
		p.dataMax = drawDur(t, name+" longest data gap", p.dataMin, 3*b.scale)
	case rapid.Bool().Draw(t, name+" peer sends data"):
		// Gaps of at least a hundredth of the dead timeout keep runs short.
		p.dataMin = drawDur(t, name+" shortest data gap", b.scale/100, b.scale)
		p.dataMax = drawDur(t, name+" longest data gap", p.dataMin, p.dataMin+2*b.scale)
	}
	return p
}

// drawFailure draws how the peer goes, as a simulator fault kind. detect:
// one of the failures our machine must find itself (C1): the peer's crash,
// a partition, a half-open link that loses the peer's frames to us. Else
// none (the first choice, where shrinking goes), one of those, the
// half-open link that loses ours (the peer may still be heard) or, for a
// client, a server restart that refuses dials for a while.
func drawFailure(t *rapid.T, b built, detect bool) (network.FaultKind, time.Duration) {
	kinds := []network.FaultKind{b.set.peerCrash(), network.Partition, b.set.halfOpenIn()}
	if !detect {
		out := network.HalfOpenUp
		if b.set.halfOpenIn() == out {
			out = network.HalfOpenDown
		}
		kinds = append(kinds, out)
		if b.set.role == fsm.Client {
			kinds = append(kinds, network.ServerRestart)
		}
	}
	var k network.FaultKind
	if detect {
		k = kinds[rapid.IntRange(0, len(kinds)-1).Draw(t, "failure")]
	} else if i := rapid.IntRange(0, len(kinds)).Draw(t, "failure"); i > 0 {
		k = kinds[i-1]
	}
	var down time.Duration
	if k == network.ServerRestart {
		down = drawDur(t, "server down for", 0, 2*b.scale)
	}
	return k, down
}

func (r *machineRun) drawPrefix(t *rapid.T, b built, most int) ([]phase, time.Duration) {
	n := rapid.IntRange(1, most).Draw(t, "phases")
	var ps []phase
	at := time.Duration(0)
	for i := range n {
		healthy := rapid.IntRange(0, 3).Draw(t, fmt.Sprintf("phase %d kind", i)) == 0
		p := r.drawPhase(t, b, fmt.Sprintf("phase %d", i), at, false)
		if healthy { // a calm stretch, not counted as healthy for A1
			p = r.drawPhase(t, b, fmt.Sprintf("phase %d", i), at, true)
			p.healthy = false
		}
		ps = append(ps, p)
		at += drawDur(t, fmt.Sprintf("phase %d length", i), 0, 3*b.long)
	}
	return ps, at
}

// safety runs random faults, pauses, closes and failures and checks every
// per-step invariant; once the machine is closed it feeds more inputs (M2).
func (r *machineRun) safety(t *rapid.T, sel Select) {
	b := r.build(t, sel)
	phases, end := r.drawPrefix(t, b, 5)
	sc := scenario{phases: phases, seed: rapid.Uint64().Draw(t, "noise seed")}
	for i := range rapid.IntRange(0, 3).Draw(t, "pauses") {
		sc.pauses = append(sc.pauses, [2]time.Duration{
			drawDur(t, fmt.Sprintf("pause %d at", i), 0, end),
			drawDur(t, fmt.Sprintf("pause %d length", i), 0, 3*b.scale),
		})
	}
	for i := range rapid.IntRange(0, 2).Draw(t, "peer closes") {
		sc.closeAt = append(sc.closeAt, drawDur(t, fmt.Sprintf("peer close %d at", i), 0, end))
	}
	if rapid.IntRange(0, 3).Draw(t, "user closes") == 0 {
		sc.userAt = drawDur(t, "user close at", time.Millisecond, end+b.scale)
	}
	if sc.fail, sc.failFor = drawFailure(t, b, false); sc.fail != 0 {
		sc.failAt = drawDur(t, "failure at", 0, end)
	}
	sc.end = end + 2*b.scale
	if len(sc.pauses) > 0 {
		b.obs.maxIdle = 0 // P2 is about a machine that is awake
	}
	w := r.start(t, b, sc, rapid.Bool().Draw(t, "frames before the late timer"))
	if b.obs.closed {
		w.stopped = false
		for _, k := range []fsm.InputKind{fsm.Start, fsm.Connected, fsm.DialFailed, fsm.FrameIn, fsm.SendFailed, fsm.PeerClosed, fsm.DeadlineReached, fsm.CloseRequested} {
			w.now += time.Millisecond
			w.step(fsm.Input{Kind: k, Frame: transport.Frame{Kind: transport.Ping}, Err: errBroken})
		}
	}
}

// completeness fails the peer after random loss and latency and checks the
// dead verdict comes within the detection bound (C1).
func (r *machineRun) completeness(t *rapid.T, sel Select) {
	b := r.build(t, sel)
	phases, end := r.drawPrefix(t, b, 4)
	// Then a calm stretch so that a connection is up when the peer fails.
	calm := r.drawPhase(t, b, "calm", end, true)
	calm.healthy = false
	phases = append(phases, calm)
	sc := scenario{phases: phases, seed: rapid.Uint64().Draw(t, "noise seed")}
	sc.fail, _ = drawFailure(t, b, true)
	sc.failAt = end + drawDur(t, "failure after the prefix", 0, 2*b.scale)
	sc.end = sc.failAt + 2*b.scale + b.set.connectTimeout + time.Hour // time to reconnect first
	b.obs.stopOnDead = true
	b.obs.detection = r.detection
	w := r.start(t, b, sc, true)
	if b.obs.failAt < 0 {
		return // the machine never got a connection to lose (it gave up, or the run ended first)
	}
	f := b.obs.failAt
	if b.obs.deadAt < 0 {
		w.fail(C1, "the peer failed (%v) at %v; the machine is still %v at %v, past the bound %v", sc.fail, f, w.m.State(), w.now, r.detection)
	}
	if took := b.obs.deadAt - f; took > r.detection {
		w.fail(C1, "the peer failed (%v) at %v and was declared dead at %v: %v, longer than the bound %v", sc.fail, f, b.obs.deadAt, took, r.detection)
	}
}

// accuracy runs a healthy link (after a degraded prefix, for a client) and
// checks the machine never convicts, or suspects where promised (A1, A2).
func (r *machineRun) accuracy(t *rapid.T, sel Select) {
	b := r.build(t, sel)
	var phases []phase
	h := time.Duration(0)
	if b.set.role == fsm.Client && rapid.Bool().Draw(t, "degraded prefix") {
		phases, h = r.drawPrefix(t, b, 3)
	}
	phases = append(phases, r.drawPhase(t, b, "healthy", h, true))
	sc := scenario{phases: phases, seed: rapid.Uint64().Draw(t, "noise seed")}
	if h > 0 {
		sc.closeAt = []time.Duration{h} // the peer drops the degraded connection
	}
	sc.end = h + b.scale + drawDur(t, "healthy for", 0, 19*b.long)
	if r.lifetime > 0 && rapid.IntRange(0, 3).Draw(t, "for the whole lifetime") == 0 {
		sc.end = h + r.lifetime + b.scale // one connection lives at least its promised lifetime
	}
	r.start(t, b, sc, true)
}

// stall pauses the local process on a healthy link whose round trip fits
// the stall grace, with a peer that may ping as fast as it is allowed, and
// checks no pause leads to a verdict (L3, F1).
func (r *machineRun) stall(t *rapid.T, sel Select) {
	b := r.build(t, sel)
	rr := *r
	rr.net.MaxRTT = min(r.net.MaxRTT, b.set.stallGrace-time.Millisecond)
	span := b.scale
	if rapid.Bool().Draw(t, "peer pings as fast as allowed") {
		fi := floodInterval(b.set.minPing)
		rr.peer = func(*rand.Rand) policy.Interval { return &policy.Every{Period: fi} }
		// Every pause queues the peer's pings: keep their number sane, yet
		// pauses well past the flood allowance (PingBurst x the flood rate).
		span = min(b.long, 20*time.Second, max(time.Duration(b.set.pingBurst)*fi, time.Second))
	}
	b.obs.a1id = L3
	b.set.inflight = rr.net.MaxRTT
	sc := scenario{
		phases: []phase{rr.drawPhase(t, b, "healthy", 0, true)},
		seed:   rapid.Uint64().Draw(t, "noise seed"),
	}
	at := time.Duration(0)
	for i := range rapid.IntRange(1, 4).Draw(t, "pauses") {
		at += drawDur(t, fmt.Sprintf("pause %d after", i), 0, 2*span)
		l := drawDur(t, fmt.Sprintf("pause %d length", i), 0, 5*span)
		sc.pauses = append(sc.pauses, [2]time.Duration{at, l})
		at += l
	}
	sc.end = at + 2*span
	rr.start(t, b, sc, true)
}
