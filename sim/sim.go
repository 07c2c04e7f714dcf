package sim

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"time"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/policy"
	"github.com/heartbeat-go/heartbeat/sim/network"
)

// Defaults used where a Config field is zero.
const (
	DefaultConns         = 100
	DefaultDuration      = time.Hour
	DefaultSpread        = time.Second
	DefaultDetectHorizon = 10 * time.Minute
	// ReloadAfter is how long a user takes to restart a client whose
	// backoff gave up.
	ReloadAfter = time.Minute
)

// Heartbeat frame sizes on the wire: a WebSocket control frame has a
// 2-byte header, a client's frames add a 4-byte mask, and the ping payload
// (echoed by the pong) is the 8-byte sequence number. TCP/IP headers are
// not counted.
const (
	upFrameBytes   = 2 + 4 + 8
	downFrameBytes = 2 + 8
	adviceBytes    = 4 // the window a server's ping adds (wire.ControlAdviceSize)
	timeoutBytes   = 2 // the fleet's timeout advice a server's ping adds (wire.ControlTimeoutBytes)
)

// never is the time of something that does not happen.
const never int64 = math.MaxInt64

// epoch is the virtual time 0 handed to the machines.
var (
	epoch     = time.Date(2000, time.January, 1, 0, 0, 0, 0, time.UTC)
	epochUnix = epoch.Unix()
)

// Config configures one run.
type Config struct {
	// Profile is the network and its faults. Required (see ProfileByName).
	Profile Profile
	// Preset gives each connection's client and server policies. Required.
	Preset policy.Preset
	// Conns is how many client–server connections run side by side. Zero
	// means DefaultConns.
	Conns int
	// Duration is the virtual time simulated. Zero means DefaultDuration.
	Duration time.Duration
	// Seed seeds the run's one random source; equal seeds give equal runs.
	Seed uint64
	// Faults are scheduled in addition to the profile's random failures.
	Faults []Fault
	// AcceptRate limits the connections the server accepts per second
	// (a token bucket holding a tenth of a second's worth, at least one);
	// excess dials are refused. Zero means unlimited.
	AcceptRate float64
	// Advice is the reconnect window the server advertises in every ping
	// it sends (transport.Frame.ReconnectWindow; its pongs echo the
	// client's pings and carry none, as on a real WebSocket); zero means
	// none.
	Advice time.Duration
	// Spread: clients make their first dial at uniform moments in
	// [0, Spread). Zero means DefaultSpread.
	Spread time.Duration
	// DetectHorizon: a failure that no surviving side has detected this
	// long after it began counts as undetected, and the stuck side is
	// reset (its user reloads). Zero means DefaultDetectHorizon.
	DetectHorizon time.Duration
	// Machine carries the fsm settings every machine gets (connect
	// timeout, stall guard, …); Role and the policies are set by the run.
	Machine fsm.Config
	// Trace, if set, receives one line per event of the run.
	Trace io.Writer
	// Fleet, if set, is the server's fleet estimator, shared by all its
	// connections (one server per run): when the server's detector takes
	// advice (policy.Advisable), every live silence that ends in a frame
	// at the server is observed, a new server-side detector starts from the
	// fleet's advice, and the server's pings carry it to the client (on a
	// connection's first ping and then at most every
	// policy.DefaultFleetAdvicePeriod, 2 bytes each). Nil means none.
	Fleet *policy.Fleet
	// Hostile makes a share of the connections feed the Fleet what a
	// hostile peer would, to measure how far they can move its advice;
	// the connections themselves, and every measure of them, stay honest.
	// The zero value is none.
	Hostile Hostile
	// Presence, if set, measures server-side presence with each model
	// listed, side by side (see Presence); Result.Presence has one entry
	// per model, in this order.
	Presence []Presence
}

// Hostile describes connections that try to move the fleet's advice.
type Hostile struct {
	// Share is the fraction of the connections that do, in [0, 0.5]: the
	// first Share × Conns of them.
	Share float64
	// Kind is how they do it.
	Kind HostileKind
}

// HostileKind is a way to pull the fleet's advice.
type HostileKind uint8

const (
	// HostileInstant answers at once and often: each silence an honest
	// peer would have shown is cut into up to 100 equal ones, at least
	// hostileEvery long, to pull the advice down.
	HostileInstant HostileKind = iota
	// HostileEdge answers each ping just before the server's dead timeout
	// (the fleet's advice as the server's detector took it): a silence of
	// that length per timeout, to push the advice up.
	HostileEdge
)

// hostileEvery is the shortest gap between an instant hostile peer's frames,
// and how far short of the timeout an edge one answers.
const hostileEvery = 10 * time.Millisecond

var hostileNames = [...]string{"instant", "edge"}

func (k HostileKind) String() string {
	if int(k) < len(hostileNames) {
		return hostileNames[k]
	}
	return fmt.Sprintf("HostileKind(%d)", k)
}

// ErrConfig is wrapped by every error about a Config.
var ErrConfig = errors.New("sim: bad config")

func (c *Config) withDefaults() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrConfig}, a...)...)
	}
	if c.Preset.Client == nil || c.Preset.Server == nil {
		return bad("no preset: set Preset (see policy.Lookup)")
	}
	if err := c.Profile.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if c.Conns == 0 {
		c.Conns = DefaultConns
	}
	if c.Duration == 0 {
		c.Duration = DefaultDuration
	}
	if c.Spread == 0 {
		c.Spread = DefaultSpread
	}
	if c.DetectHorizon == 0 {
		c.DetectHorizon = DefaultDetectHorizon
	}
	switch {
	case c.Conns < 0 || c.Conns > 1<<24:
		return bad("%d connections: want 1 to %d (0 means %d)", c.Conns, 1<<24, DefaultConns)
	case c.Duration < 0:
		return bad("duration %v must be positive (0 means %v)", c.Duration, DefaultDuration)
	case c.Spread < 0:
		return bad("spread %v must be positive (0 means %v)", c.Spread, DefaultSpread)
	case c.DetectHorizon < 0:
		return bad("detect horizon %v must be positive (0 means %v)", c.DetectHorizon, DefaultDetectHorizon)
	case c.AcceptRate < 0 || c.AcceptRate != c.AcceptRate:
		return bad("accept rate %g must not be negative (0 means unlimited)", c.AcceptRate)
	case c.Advice < 0:
		return bad("advice %v must not be negative (0 means none)", c.Advice)
	case !(c.Hostile.Share >= 0 && c.Hostile.Share <= 0.5):
		return bad("hostile share %g: want 0 to 0.5", c.Hostile.Share)
	case c.Hostile.Kind > HostileEdge:
		return bad("hostile kind %v: want HostileInstant or HostileEdge", c.Hostile.Kind)
	}
	for _, f := range c.Faults {
		if err := f.validate(c.Conns, c.Duration); err != nil {
			return fmt.Errorf("%w: %w", ErrConfig, err)
		}
	}
	if err := validatePresence(c.Presence); err != nil {
		return bad("%v", err)
	}
	return nil
}

// side says which end of a slot an endpoint is: the client, the server's
// current connection, or a ghost — the server's older connection of the
// same slot, still watching a connection the client has left.
type side uint8

const (
	client side = iota
	server
	ghost
)

var sideNames = [...]string{"client", "server", "ghost"}

func (s side) String() string { return sideNames[s] }

// class is the side of the wire: ghost is a server.
func (s side) class() side { return min(s, server) }

// endpoint is one Machine and its place in the simulation.
type endpoint struct {
	m         *fsm.Machine
	adv       policy.Advisable // the server's detector, if it takes the fleet's advice
	armed     int64            // time of the live timer event; 0 for none
	want      int64            // the machine's deadline (never for none)
	lastEv    int64            // the latest evidence of life
	suspectAt int64            // when a healthy suspect episode began; -1 if none
	gen       uint32           // the connection it is on; 0 for none
	tgen      uint32           // timer generation: older timer events are stale
	up        bool             // alive or suspect
	late      bool             // want is a pause's end, not the machine's deadline
}

// failure is the state of a slot's latest fault.
type failure struct {
	at, until int64
	lastEv    [2]int64 // latest evidence per side class on the doomed connection
	serial    uint32
	gen       uint32 // the doomed connection
	kind      FaultKind
	measuring bool  // detection not yet seen
	survivors uint8 // bit per side class that can detect it
}

// slot is one client and its server side.
type slot struct {
	ep         [3]endpoint
	up, down   network.State
	fail       failure
	stallFrom  int64
	stallUntil int64
	pauseFrom  int64
	pauseUntil int64
	gen        uint32 // the latest connection generation
	advisedGen uint32 // the connection the fleet's advice last went out on
	advisedAt  int64  // when it did
	advice     int64  // the fleet advice of the server's latest advising ping
}

// engine is one run in progress. It is single-threaded; run independent engines
// on separate goroutines to use more cores.
type engine struct {
	cfg     Config
	r       *rand.Rand
	q       queue
	cur     event // the event being handled
	now     int64
	horizon int64
	slots   []slot
	acts    []fsm.Action
	payload [10]byte // a ping's: sequence number, then 2 bytes when it carries the fleet's advice
	tr      *bufio.Writer
	err     error
	stop    bool

	tokens, tokenCap float64
	tokenAt          int64
	serverDownUntil  int64
	serial           uint32

	// storm hooks
	onSyn     func(now int64)
	onSend    func(from side, e *event) (keep bool) // a test's view of each heartbeat sent
	onAlive   func(slot int32, now int64)
	onRestart func()
	onDeliver func(e *event) // tests: every packet handed to an endpoint

	fleetOn bool         // Fleet is set and the server's detector takes advice
	hostile int32        // slots below this feed the fleet as Config.Hostile says
	hr      *rand.Rand   // the hostile observations' own source, so the rest draw as without them
	pres    *presenceRun // nil unless Config.Presence is set
	meter   meter
}

// Run simulates cfg and returns its measurements. The same Config gives
// the same Result (and trace) byte for byte.
func Run(cfg Config) (*Result, error) {
	s, err := newSim(cfg)
	if err != nil {
		return nil, err
	}
	if err := s.run(); err != nil {
		return nil, err
	}
	return s.result(), nil
}

func newSim(cfg Config) (*engine, error) {
	if err := cfg.withDefaults(); err != nil {
		return nil, err
	}
	s := &engine{
		cfg:     cfg,
		r:       rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		hr:      rand.New(rand.NewPCG(cfg.Seed^0x5bd1e995, cfg.Seed)),
		hostile: int32(cfg.Hostile.Share * float64(cfg.Conns)),
		horizon: int64(cfg.Duration),
		slots:   make([]slot, cfg.Conns),
		acts:    make([]fsm.Action, 0, 16),
	}
	s.q.init(cfg.Conns)
	if cfg.Trace != nil {
		s.tr = bufio.NewWriter(cfg.Trace)
	}
	if cfg.AcceptRate > 0 {
		s.tokenCap = max(1, cfg.AcceptRate/10)
		s.tokens = s.tokenCap
	}
	s.meter.init()
	var err error
	if s.pres, err = newPresenceRun(&s.cfg); err != nil {
		return nil, err
	}
	for i := range s.slots {
		sl := &s.slots[i]
		for j := range sl.ep {
			sl.ep[j].want = never
			sl.ep[j].suspectAt = -1
		}
		s.q.push(event{at: int64(s.r.Float64() * float64(cfg.Spread)), kind: evStart, slot: int32(i)})
		if cfg.Profile.FailEvery > 0 {
			s.q.push(event{at: s.expo(cfg.Profile.FailEvery), kind: evFault, slot: int32(i)})
		}
	}
	for i, f := range cfg.Faults {
		s.q.push(event{at: int64(f.At), kind: evFault, slot: int32(max(f.Slot, 0)), aux: uint32(i + 1)})
	}
	return s, nil
}

func (s *engine) expo(mean time.Duration) int64 {
	return int64(s.r.ExpFloat64() * float64(mean))
}

func (s *engine) run() error {
	for !s.stop && s.err == nil {
		if e := s.q.peek(); e == nil || e.at > s.horizon {
			break
		}
		s.cur = s.q.pop() // a field, not a local: &e would escape to the heap
		s.now = s.cur.at
		s.handle(&s.cur)
	}
	if s.tr != nil {
		if err := s.tr.Flush(); err != nil && s.err == nil {
			s.err = fmt.Errorf("sim: writing the trace: %w", err)
		}
	}
	return s.err
}

func (s *engine) handle(e *event) {
	sl := &s.slots[e.slot]
	if e.kind != evTimer {
		s.meter.events++
		s.trace(e)
	}
	switch e.kind {
	case evTimer:
		s.timer(e)
	case evStart:
		s.startClient(e.slot)
	case evSyn:
		s.meter.link.InFlight--
		s.syn(e)
	case evAccept, evRefuse:
		s.meter.link.InFlight--
		ep := &sl.ep[client]
		if ep.m == nil || ep.gen != e.gen || s.cutOff(e.slot, e.gen, client) {
			s.meter.link.Dropped++
			return
		}
		s.delivered(e)
		if e.kind == evAccept {
			s.step(e.slot, client, e.gen, fsm.Input{Kind: fsm.Connected})
		} else {
			ep.gen = 0
			s.step(e.slot, client, e.gen, fsm.Input{Kind: fsm.DialFailed, Err: errRefused})
		}
	case evFrame, evFin:
		s.meter.link.InFlight--
		s.arrive(e)
	case evReset:
		idx, ok := s.find(sl, e.side, e.gen)
		if !ok {
			return
		}
		sl.ep[idx].gen = 0
		s.step(e.slot, idx, e.gen, fsm.Input{Kind: fsm.PeerClosed, Err: errReset})
	case evFault:
		s.fault(e)
	case evCap:
		s.cap(e)
	}
}

// Errors the simulated transport hands to the machines.
var (
	errRefused = errors.New("sim: connection refused")
	errReset   = errors.New("sim: connection reset by peer")
	errClosed  = errors.New("sim: peer closed the connection")
)

// find returns the endpoint of side class c on connection gen.
func (s *engine) find(sl *slot, c side, gen uint32) (side, bool) {
	if gen == 0 {
		return 0, false
	}
	if c == client {
		return client, sl.ep[client].m != nil && sl.ep[client].gen == gen
	}
	for _, i := range [...]side{server, ghost} {
		if sl.ep[i].m != nil && sl.ep[i].gen == gen {
			return i, true
		}
	}
	return 0, false
}

// cutOff applies the slot's failure to a packet of connection gen
// arriving at side class to: it reports whether the packet is lost, and
// sends a reset back when the packet reaches a host that has forgotten
// the connection.
func (s *engine) cutOff(i int32, gen uint32, to side) bool {
	sl := &s.slots[i]
	f := &sl.fail
	if f.kind == 0 || gen != f.gen || s.now < f.at {
		return false
	}
	reset := false
	switch f.kind {
	case Partition:
		reset = s.now >= f.until
	case CrashClient, CrashServer:
		if (f.kind == CrashClient) != (to == client) {
			return false
		}
		reset = s.now >= f.until
	case HalfOpenUp, HalfOpenDown:
		if (f.kind == HalfOpenDown) != (to == client) {
			return false
		}
	default:
		return false
	}
	if reset {
		from := server
		d := &s.cfg.Profile.Link.Down
		if to == server {
			from, d = client, &s.cfg.Profile.Link.Up
		}
		s.q.push(event{at: s.now + d.Latency.Sample(s.r), kind: evReset, slot: i, side: from, gen: gen})
	}
	return true
}

// arrive delivers a frame or a close to its endpoint.
func (s *engine) arrive(e *event) {
	sl := &s.slots[e.slot]
	if s.cutOff(e.slot, e.gen, e.side) {
		s.meter.link.Dropped++
		return
	}
	idx, ok := s.find(sl, e.side, e.gen)
	if !ok {
		s.meter.link.Dropped++
		return
	}
	s.delivered(e)
	ep := &sl.ep[idx]
	if e.kind == evFin {
		ep.gen = 0
		s.step(e.slot, idx, e.gen, fsm.Input{Kind: fsm.PeerClosed, Err: errClosed})
		return
	}
	if ep.up {
		if idx != client && s.fleetOn {
			// A silence that ended in a frame: the peer was alive through
			// it, whatever the network did.
			if e.slot < s.hostile {
				s.observeHostile(ep, time.Duration(s.now-ep.lastEv))
			} else {
				s.cfg.Fleet.Observe("", epoch.Add(time.Duration(s.now)), time.Duration(s.now-ep.lastEv))
			}
		}
		f := &sl.fail
		if f.kind.Failure() && f.gen == e.gen && s.now >= f.at {
			f.lastEv[idx.class()] = s.now
		} else {
			s.meter.gaps[idx.class()].add(s.now - ep.lastEv)
		}
		ep.lastEv = s.now
	}
	var fr = frameOf(e, s)
	s.step(e.slot, idx, e.gen, fsm.Input{Kind: fsm.FrameIn, Frame: fr})
}

// observeHostile feeds the fleet what a hostile peer would have made of a
// silence that an honest one ended in a frame.
func (s *engine) observeHostile(ep *endpoint, silence time.Duration) {
	now := epoch.Add(time.Duration(s.now))
	f := s.cfg.Fleet
	switch s.cfg.Hostile.Kind {
	case HostileInstant:
		n := min(int(silence/hostileEvery), 100)
		for range n {
			f.Observe("", now, silence/time.Duration(n))
		}
		if n == 0 {
			f.Observe("", now, silence)
		}
	case HostileEdge:
		// One silence just short of the server's dead timeout (the
		// fleet's advice, clamped by the detector) per timeout of time.
		var t time.Duration
		if d, ok := ep.adv.(policy.Detector); ok && f.Advice("") > 0 {
			_, t = d.Timeouts()
		}
		if t <= hostileEvery {
			f.Observe("", now, silence)
			return
		}
		if s.hr.Float64() < float64(silence)/float64(t) {
			f.Observe("", now, t-hostileEvery)
		}
	}
}

// syn handles a client's connection request at the server.
func (s *engine) syn(e *event) {
	sl := &s.slots[e.slot]
	f := &sl.fail
	if (f.kind == Partition || f.kind == CrashServer) && s.now >= f.at && s.now < f.until {
		s.meter.link.Dropped++ // black-holed: the client's connect timeout decides
		return
	}
	s.delivered(e)
	if s.onSyn != nil {
		s.onSyn(s.now)
	}
	if s.now < s.serverDownUntil || (s.cfg.Profile.DialFailure > 0 && s.r.Float64() < s.cfg.Profile.DialFailure) || !s.takeToken() {
		s.meter.refused++
		s.control(e.slot, server, evRefuse, e.gen)
		return
	}
	sv := &sl.ep[server]
	if sv.m != nil {
		// The server still holds an older connection of this slot: it
		// goes on watching it as a ghost.
		g := &sl.ep[ghost]
		if g.m != nil {
			s.meter.ghostsDropped++
		}
		*g = *sv
		g.armed = 0
		g.tgen = sv.tgen + 1
		s.arm(e.slot, ghost)
	}
	tg := sv.tgen + 1
	*sv = endpoint{want: never, suspectAt: -1, tgen: tg}
	set := s.cfg.Preset.Server(s.r)
	mc := s.cfg.Machine
	mc.Role, mc.Detector, mc.Interval, mc.Backoff = fsm.Server, set.Detector, set.Interval, nil
	m, err := fsm.NewMachine(mc)
	if err != nil {
		s.err = fmt.Errorf("sim: preset %q server: %w", s.cfg.Preset.Name, err)
		return
	}
	sv.m, sv.gen = m, e.gen
	if a, ok := set.Detector.(policy.Advisable); ok && s.cfg.Fleet != nil {
		s.fleetOn, sv.adv = true, a
		a.Advise(s.cfg.Fleet.Advice(""))
	}
	// The accept (a WebSocket's 101 response) goes out before anything the
	// server sends on the connection, such as a ping at connect: on the
	// ordered stream the client must be connected before it hears it.
	s.control(e.slot, server, evAccept, e.gen)
	s.step(e.slot, server, e.gen, fsm.Input{Kind: fsm.Start})
}

func (s *engine) delivered(e *event) {
	s.meter.link.Delivered++
	if s.onDeliver != nil {
		s.onDeliver(e)
	}
}

func (s *engine) takeToken() bool {
	if s.cfg.AcceptRate <= 0 {
		return true
	}
	s.tokens = min(s.tokenCap, s.tokens+float64(s.now-s.tokenAt)*s.cfg.AcceptRate/1e9)
	s.tokenAt = s.now
	if s.tokens < 1 {
		return false
	}
	s.tokens--
	return true
}

// startClient starts (or restarts) a slot's client with a fresh machine.
func (s *engine) startClient(i int32) {
	sl := &s.slots[i]
	ep := &sl.ep[client]
	set := s.cfg.Preset.Client(s.r)
	mc := s.cfg.Machine
	mc.Role, mc.Detector, mc.Interval, mc.Backoff = fsm.Client, set.Detector, set.Interval, set.Backoff
	m, err := fsm.NewMachine(mc)
	if err != nil {
		s.err = fmt.Errorf("sim: preset %q client: %w", s.cfg.Preset.Name, err)
		return
	}
	*ep = endpoint{m: m, want: never, suspectAt: -1, tgen: ep.tgen + 1}
	s.meter.starts++
	s.step(i, client, 0, fsm.Input{Kind: fsm.Start})
}

// control sends a connection-control packet (accept, refuse, close) from
// side class from. Control packets are retransmitted like stream data
// even on a datagram link, and a close keeps its place behind the data.
func (s *engine) control(i int32, from side, kind evKind, gen uint32) {
	sl := &s.slots[i]
	d, st, to := &s.cfg.Profile.Link.Up, &sl.up, server
	if from != client {
		d, st, to = &s.cfg.Profile.Link.Down, &sl.down, client
	}
	bf, bu := s.stall(sl)
	s.meter.link.Sent++
	at, _, ok := d.Transmit(s.r, st, s.now, bf, bu, true, &s.meter.link)
	if !ok {
		s.meter.link.Dropped++
		return
	}
	s.meter.link.InFlight++
	s.q.push(event{at: at, kind: kind, slot: i, side: to, gen: gen})
}

// stall returns the slot's current or next stall window, drawing the next
// one when the last has passed.
func (s *engine) stall(sl *slot) (from, until int64) {
	w := &s.cfg.Profile.Stalls
	if w.Every == 0 {
		return never, never
	}
	s.advanceWindow(w, &sl.stallFrom, &sl.stallUntil)
	return sl.stallFrom, sl.stallUntil
}

// advanceWindow draws windows of weather w until the one in *from..*until
// is current or ahead: the gap before each is exponential with mean
// w.Every, its length w.Length, and it is never empty.
func (s *engine) advanceWindow(w *Weather, from, until *int64) {
	for s.now >= *until {
		*from = max(*until, 0) + s.expo(w.Every)
		*until = *from + w.Length.Sample(s.r)
		if *until == *from {
			*until++
		}
	}
}

// pause returns the client's current or next pause window.
func (s *engine) pause(sl *slot) (from, until int64) {
	w := &s.cfg.Profile.Pauses
	if w.Every == 0 {
		if s.now < sl.pauseUntil {
			return sl.pauseFrom, sl.pauseUntil
		}
		return never, never
	}
	s.advanceWindow(w, &sl.pauseFrom, &sl.pauseUntil)
	return sl.pauseFrom, sl.pauseUntil
}
