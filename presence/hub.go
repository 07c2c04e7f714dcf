package presence

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/policy"
	"github.com/heartbeat-go/heartbeat/presence/internal/fanout"
	"github.com/heartbeat-go/heartbeat/transport"
	"github.com/heartbeat-go/heartbeat/transport/wire"
)

// Defaults of HubConfig, used where a field is zero.
const (
	// DefaultAcceptRate is how many connections per second a server is
	// assumed to accept after a restart; the advised reconnect window is
	// the number of connections divided by it.
	DefaultAcceptRate = 1000
	// DefaultDialAllowance is what the derived resume window adds to the
	// advised reconnect window: time for the client's dial and handshake.
	DefaultDialAllowance = 5 * time.Second
	// MinResumeWindow is the least derived resume window, so a small server
	// (an advice near zero) still bridges a reconnect.
	MinResumeWindow = 10 * time.Second
	// DefaultSlot is the width of a timer-wheel slot: a deadline fires at
	// most this late, plus the scheduler's own latency.
	DefaultSlot = 10 * time.Millisecond
	// DefaultWriters is how many goroutines per shard write heartbeats, so
	// one peer whose socket buffer is full delays no other connection.
	DefaultWriters = 4
	// DefaultMaxIDLen bounds Identity.User and Identity.Session, in bytes
	// each: room for a UUID, a JWT subject or js.SessionID's 16
	// characters many times over.
	DefaultMaxIDLen = 256
	// DefaultMaxMeta bounds Identity.Meta: its keys and values together,
	// in bytes.
	DefaultMaxMeta = 4 << 10
)

// Errors of the hub.
var (
	// ErrHubClosed: the hub is shutting down or shut down.
	ErrHubClosed = errors.New("presence: hub closed")
	// ErrIdentity: an Identity without a user or a session. An empty
	// session would fold every tab of a user into one session, so that a
	// reload could not be told from a second tab.
	ErrIdentity = errors.New("presence: identity needs a user and a session")
	// ErrIdentityTooLarge: an Identity over HubConfig.MaxIDLen or MaxMeta
	// (an *IdentitySizeError says which part). Every part of an identity
	// is kept per session, logged, published in events and, in a cluster,
	// written to Redis.
	ErrIdentityTooLarge = errors.New("presence: identity too large")
	// ErrShutdown is the reason a connection is closed with when the hub
	// shuts down: a WebSocket adapter sends close code 1001 (going away)
	// and waits, up to its close timeout, for the peer's close frame, so
	// that nothing the peer sent meanwhile turns the close into a reset
	// that loses the close frame.
	ErrShutdown error = shutdownError{}
	// ErrKicked is the reason of Watched.Close: close code 1000.
	ErrKicked = fmt.Errorf("presence: closed by the server: %w", fsm.ErrClosed)
	// ErrDrain is the reason of Watched.Drain: close code 1001, and the
	// client is expected back.
	ErrDrain = errors.New("presence: server asks the client to reconnect")
)

// shutdownError is ErrShutdown's type: its CloseHandshake asks the
// adapters for the close handshake (wire.Handshake), which they skip for
// other reasons of their own packages.
type shutdownError struct{}

func (shutdownError) Error() string        { return "presence: server shutting down" }
func (shutdownError) CloseHandshake() bool { return true }

// NoFleet, as HubConfig.Fleet, turns the fleet estimator off. Like
// http.NoBody it is a marker, told by its address: the hub never uses it
// as an estimator.
var NoFleet = &policy.Fleet{}

// HubConfig configures a Hub. The zero value is usable.
type HubConfig struct {
	// Policies returns the server-side policies of a new connection (fresh
	// instances: policies keep per-connection state). Nil means
	// policy.DefaultServerSet, which suits clients running this library's
	// defaults.
	Policies func() policy.Set
	// Machine tunes every connection's Machine; its Role and policies are
	// set by the hub.
	Machine fsm.Config
	// Shards is how many goroutines run the connections' timers. Zero
	// means GOMAXPROCS.
	Shards int
	// Slot is the timer wheel's resolution. Zero means DefaultSlot.
	Slot time.Duration
	// Writers is how many goroutines per shard write heartbeats. Zero
	// means DefaultWriters. The writes wait in a queue that holds at most
	// one per connection: a connection whose last heartbeat is still being
	// written sends no other until it is (a peer that does not read gets
	// no pile of pings). When every writer is busy and a heartbeat has
	// waited 50 ms, one more starts, and leaves once the queue is empty:
	// peers that do not read, each holding a writer up to WriteTimeout,
	// delay nobody else's heartbeat.
	Writers int
	// WriteTimeout bounds one heartbeat write. Zero means
	// fsm.DefaultWriteTimeout.
	WriteTimeout time.Duration
	// AcceptRate is how many connections per second this server accepts
	// after a restart; it turns the number of connections into the
	// reconnect window advertised in every heartbeat. Zero means
	// DefaultAcceptRate.
	AcceptRate float64
	// ResumeWindow is how long a session outlives a lost connection. Zero
	// means derived: the advised reconnect window at the time of the loss
	// plus DefaultDialAllowance, at least MinResumeWindow.
	ResumeWindow time.Duration
	// OnEvent, if set, is called with every presence event, in order, none
	// dropped, on the hub's event goroutine; it must return promptly (the
	// events queue up behind it). Subscribe adds more consumers.
	OnEvent func(Event)
	// Fleet learns the live silences of every connection the hub watches
	// (policy.Fleet) and advises a dead timeout: each new connection's
	// detector starts from it (if it takes advice, policy.Advisable), and
	// the hub's pings carry it to the clients, on a connection's first
	// ping and then at most every policy.DefaultFleetAdvicePeriod. Nil
	// means a policy.Fleet with its defaults; NoFleet turns it off.
	Fleet *policy.Fleet
	// FleetClass, if set, is the Identity.Meta key whose value classes a
	// connection for the fleet (a platform, a network type): silences of
	// different classes are learned and advised apart (at most
	// Fleet.MaxClasses of them).
	FleetClass string
	// Observe, if set, is called with every connection's state change, on
	// the hub's goroutines under a shard's lock: it must return promptly
	// and must not call the hub (package presence/promhub turns it into
	// metrics).
	Observe func(ConnChange)
	// Logger receives state changes (connection, user, session, reason):
	// online and offline at Info, the rest at Debug. Nil means no logging.
	Logger *slog.Logger
	// Cluster, if set, makes Online, Snapshot, Subscribe and OnEvent cover
	// every server node (presence/cluster over Redis); nil keeps presence
	// to this hub. OnEvent then runs on the cluster's delivery goroutine.
	Cluster Cluster
	// MaxIDLen bounds Identity.User and Identity.Session, in bytes each;
	// Watch and the handlers refuse a longer one (ErrIdentityTooLarge,
	// HTTP 400 before the upgrade). Zero means DefaultMaxIDLen.
	MaxIDLen int
	// MaxMeta bounds Identity.Meta, its keys and values together, in
	// bytes, as MaxIDLen does the IDs. Zero means DefaultMaxMeta.
	MaxMeta int
}

// Conn is a connection the hub can watch: the Conn of transport/gorillaws
// or transport/coderws satisfies it. Bind must start the connection's
// reader, which reports every frame to ev, and must not call ev itself.
type Conn interface {
	transport.Conn
	Bind(ev transport.Events) error
}

// Hub runs the heartbeat of many server-side connections on a few shards,
// each with one timer wheel and a few writers, and keeps a Registry of who
// is online. Nothing runs per connection but its Machine and policies: no
// goroutine, channel, context or timer. Its methods are safe for
// concurrent use.
type Hub struct {
	cfg      HubConfig
	shards   []*shard
	next     atomic.Uint32 // round-robin shard choice
	conns    atomic.Int64
	idPrefix string
	ids      atomic.Uint64
	spreads  atomic.Uint64 // draws the first-ping shifts
	log      *slog.Logger
	fleet    *policy.Fleet // nil: off

	regMu    sync.Mutex
	reg      *Registry
	regEvs   []Event
	events   *fanout.Fanout[Event] // on regMu: to OnEvent (or the cluster) and the subscribers
	regTimer time.Time             // the registry deadline the event goroutine waits for

	closing  atomic.Bool
	farewell atomic.Int64 // the advice as shutdown began, for the close notes
	stop     chan struct{}
	wg       sync.WaitGroup
	closeWG  sync.WaitGroup // connection closes queued or in progress
	closeMu  sync.Mutex
	closeQ   []closeJob
	closers  int
	eventsWG sync.WaitGroup
	unsub    func() // OnEvent's cluster subscription
	// The Seq of the latest cluster event handed to OnEvent, and a kick
	// when it grows: Shutdown waits for the hub's own leaves to come
	// through the cluster.
	clusterSeen atomic.Uint64
	clusterKick chan struct{}
}

// NewHub validates cfg and starts the hub's goroutines: one per shard, its
// writers, and one that delivers events. Shutdown stops them.
func NewHub(cfg HubConfig) (*Hub, error) {
	if cfg.Policies == nil {
		cfg.Policies = policy.DefaultServerSet
	}
	if cfg.Shards == 0 {
		cfg.Shards = runtime.GOMAXPROCS(0)
	}
	if cfg.Slot == 0 {
		cfg.Slot = DefaultSlot
	}
	if cfg.Writers == 0 {
		cfg.Writers = DefaultWriters
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = fsm.DefaultWriteTimeout
	}
	if cfg.AcceptRate == 0 {
		cfg.AcceptRate = DefaultAcceptRate
	}
	if cfg.MaxIDLen == 0 {
		cfg.MaxIDLen = DefaultMaxIDLen
	}
	if cfg.MaxMeta == 0 {
		cfg.MaxMeta = DefaultMaxMeta
	}
	switch {
	case cfg.MaxIDLen < 0 || cfg.MaxMeta < 0:
		return nil, fmt.Errorf("%w: identity limits %d and %d must be positive (zero means %d and %d)", ErrConfig, cfg.MaxIDLen, cfg.MaxMeta, DefaultMaxIDLen, DefaultMaxMeta)
	case cfg.Shards < 0 || cfg.Writers < 0:
		return nil, fmt.Errorf("%w: shards %d and writers %d must not be negative (zero means a default)", ErrConfig, cfg.Shards, cfg.Writers)
	case cfg.Slot < 0 || cfg.WriteTimeout < 0:
		return nil, fmt.Errorf("%w: slot %v and write timeout %v must be positive (zero means a default)", ErrConfig, cfg.Slot, cfg.WriteTimeout)
	case cfg.AcceptRate < 0 || math.IsNaN(cfg.AcceptRate) || math.IsInf(cfg.AcceptRate, 0):
		return nil, fmt.Errorf("%w: accept rate %v must be a positive number of connections per second (zero means %d)", ErrConfig, cfg.AcceptRate, DefaultAcceptRate)
	}
	reg, err := NewRegistry(RegistryConfig{ResumeWindow: cfg.ResumeWindow})
	if err != nil {
		return nil, err
	}
	// The machine config is checked once here, not at every Watch.
	mc := cfg.Machine
	set := cfg.Policies()
	mc.Role, mc.Detector, mc.Interval, mc.Backoff = fsm.Server, set.Detector, set.Interval, nil
	if _, err := fsm.NewMachine(mc); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	var prefix [6]byte
	_, _ = rand.Read(prefix[:])
	h := &Hub{
		cfg:      cfg,
		idPrefix: base64.RawURLEncoding.EncodeToString(prefix[:]) + "-",
		reg:      reg,
		stop:     make(chan struct{}),
		log:      cfg.Logger,
	}
	var first []func(Event) // takes every event, from the start
	if cfg.Cluster != nil {
		first = append(first, cfg.Cluster.Local)
	} else if cfg.OnEvent != nil {
		first = append(first, cfg.OnEvent)
	}
	h.events = fanout.New(&h.regMu, func(e Event) uint64 { return e.Seq }, first...)
	if cfg.Fleet != NoFleet {
		h.fleet = cfg.Fleet
		if h.fleet == nil {
			h.fleet = &policy.Fleet{}
		}
		if err := h.fleet.Validate(); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
	}
	if cfg.Cluster != nil && cfg.OnEvent != nil {
		h.clusterKick = make(chan struct{}, 1)
		var snap Snapshot
		snap, h.unsub = cfg.Cluster.Subscribe(func(e Event) {
			cfg.OnEvent(e)
			h.seenCluster(e.Seq)
		})
		h.seenCluster(snap.Seq)
	}
	now := time.Now()
	up := upstream{
		slot: cfg.Slot, writeTimeout: cfg.WriteTimeout, fleet: h.fleet, log: h.log, observe: cfg.Observe,
		stop: h.stop, wg: &h.wg, conns: &h.conns, farewell: &h.farewell,
		reconnectWindow: h.Advice, resumeWindow: h.resumeWindow, closeConn: h.enqueueCloseJob,
		alive: h.stepRegistryAlive, lost: h.stepRegistryWindow,
	}
	for range cfg.Shards {
		s := newShard(up, now)
		h.shards = append(h.shards, s)
		h.wg.Add(1 + cfg.Writers)
		go s.run()
		for range cfg.Writers {
			go s.write(false)
		}
	}
	h.eventsWG.Add(1)
	go h.deliver()
	return h, nil
}

// NewConnID returns a connection ID unique to this hub's life (and, with a
// random prefix, across restarts), short enough for the wire format.
func (h *Hub) NewConnID() string {
	return h.idPrefix + strconv.FormatUint(h.ids.Add(1), 36)
}

// Fleet returns the hub's fleet estimator, or nil if it has none
// (HubConfig.Fleet set to NoFleet).
func (h *Hub) Fleet() *policy.Fleet { return h.fleet }

// Advice returns the reconnect window the hub advertises now: its
// connections divided by the accept rate, at most wire.MaxWindow.
func (h *Hub) Advice() time.Duration {
	w := time.Duration(float64(h.conns.Load()) / h.cfg.AcceptRate * float64(time.Second))
	return min(w.Round(time.Millisecond), wire.MaxWindow)
}

// resumeWindow is how long a session lost now waits for a reconnect.
func (h *Hub) resumeWindow() time.Duration {
	if h.cfg.ResumeWindow > 0 {
		return h.cfg.ResumeWindow
	}
	return min(max(h.Advice()+DefaultDialAllowance, MinResumeWindow), MaxResumeWindow)
}

// Watch runs the heartbeat's server role on c, an accepted connection, for
// id: it binds c (starting its reader), and from then on the hub steps the
// connection's Machine on every inbound frame and at its deadlines, closes
// c when the peer is dead, and reports presence. connID is the ID the
// connection is known by (use NewConnID, and give the same ID to the
// adapter's Options.ConnID so the client learns it). On an error c is
// closed; an Identity without a user or a session is refused with
// ErrIdentity, one over the size limits with ErrIdentityTooLarge.
func (h *Hub) Watch(c Conn, connID string, id Identity) (*Watched, error) {
	return h.watch(c, connID, id, nil)
}

// watch is Watch; onEnd, if set, is called once the connection is over and
// closed (its reader has exited), on a closer goroutine.
func (h *Hub) watch(c Conn, connID string, id Identity, onEnd func(error)) (*Watched, error) {
	if h.closing.Load() {
		_ = c.Close(ErrShutdown)
		return nil, ErrHubClosed
	}
	if err := h.CheckIdentity(id); err != nil {
		_ = c.Close(err)
		return nil, err
	}
	set := h.cfg.Policies()
	mc := h.cfg.Machine
	iv := &spread{Interval: set.Interval, frac: uint16(mix64(h.spreads.Add(1)))}
	mc.Role, mc.Detector, mc.Interval, mc.Backoff = fsm.Server, set.Detector, iv, nil
	m, err := fsm.NewMachine(mc)
	if err != nil {
		_ = c.Close(err)
		return nil, err
	}
	if testHookWatch != nil {
		testHookWatch()
	}
	s := h.shards[int(h.next.Add(1))%len(h.shards)]
	hc := &conn{shard: s, m: m, t: c, id: connID, user: id.User, session: id.Session, meta: id.Meta, slot: -1, index: -1, onEnd: onEnd}
	if nb, ok := c.(NonBlockingSender); ok {
		hc.direct = nb.SendNeverBlocks()
	}
	if h.fleet != nil {
		hc.heard = time.Now().UnixNano()
		if h.cfg.FleetClass != "" {
			hc.class = id.Meta[h.cfg.FleetClass]
		}
		if a, ok := set.Detector.(policy.Advisable); ok {
			hc.adv = a
			a.Advise(h.fleet.Advice(hc.class))
		}
	}
	s.mu.Lock()
	if h.closing.Load() {
		// Shutdown began after the check above: it has passed, or will
		// pass, this shard without this connection.
		s.mu.Unlock()
		_ = c.Close(ErrShutdown)
		return nil, ErrHubClosed
	}
	h.conns.Add(1)
	s.add(hc)
	s.step(hc, fsm.Input{Kind: fsm.Start})
	if err := c.Bind(hc); err != nil {
		s.step(hc, fsm.Input{Kind: fsm.DialFailed, Err: err})
		s.unlock()
		return nil, err
	}
	s.step(hc, fsm.Input{Kind: fsm.Connected})
	s.unlock()
	return &Watched{c: hc, h: h}, nil
}

// testHookWatch, if set, runs in Watch between its first check of the
// hub's state and its shard's lock.
var testHookWatch func()

// Online reports whether user has a session online.
func (h *Hub) Online(user string) bool {
	if h.cfg.Cluster != nil {
		return h.cfg.Cluster.Online(user)
	}
	h.regMu.Lock()
	defer h.regMu.Unlock()
	return h.reg.Online(user)
}

// Snapshot returns who is online now, as of its Seq.
func (h *Hub) Snapshot() Snapshot {
	if h.cfg.Cluster != nil {
		return h.cfg.Cluster.Snapshot()
	}
	h.regMu.Lock()
	defer h.regMu.Unlock()
	return h.reg.Snapshot()
}

// Subscribe returns who is online now and calls fn with every event after
// that snapshot, in order, none dropped, on the hub's event goroutine (fn
// must return promptly), until cancel is called.
func (h *Hub) Subscribe(fn func(Event)) (snap Snapshot, cancel func()) {
	if h.cfg.Cluster != nil {
		return h.cfg.Cluster.Subscribe(fn)
	}
	h.regMu.Lock()
	defer h.regMu.Unlock()
	// Events still queued are already in the snapshot: the subscriber
	// skips them by their Seq.
	snap = h.reg.Snapshot()
	return snap, h.events.Subscribe(snap.Seq, fn)
}

// HubStats is what the hub counts, for logs and metrics: this hub's own
// connections, users and sessions, also with HubConfig.Cluster set (the
// cluster's are in Snapshot).
type HubStats struct {
	Conns, Users, Sessions int
	// WriteQueuePeak is the most heartbeat writes one shard has had
	// waiting for a writer; SendErrors counts writes that failed.
	WriteQueuePeak, SendErrors uint64
	// Lateness counts deadline firings by how late they ran: bucket i
	// counts lateness below LatenessBuckets[i] (the last, the rest).
	Lateness [len(LatenessBuckets) + 1]uint64
	// Events is the sequence number of the hub's latest own presence
	// event; with HubConfig.Cluster set, OnEvent's and Snapshot's Seq are
	// the cluster's numbering instead.
	Events uint64
}

// LatenessBuckets are the upper bounds of HubStats.Lateness's buckets.
var LatenessBuckets = [...]time.Duration{time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, time.Second}

// Stats returns the hub's counters.
func (h *Hub) Stats() HubStats {
	var st HubStats
	for _, s := range h.shards {
		st.WriteQueuePeak = max(st.WriteQueuePeak, s.queuePeak.Load())
		st.SendErrors += s.sendErrs.Load()
		for i := range st.Lateness {
			st.Lateness[i] += s.late[i].Load()
		}
	}
	h.regMu.Lock()
	st.Conns, st.Users, st.Sessions, st.Events = int(h.conns.Load()), h.reg.Users(), h.reg.Sessions(), h.reg.Seq()
	h.regMu.Unlock()
	return st
}

// Shutdown closes every connection with ErrShutdown (close code 1001,
// "going away"), after telling clients of the application-level format the
// reconnect window to spread their redials over; then waits until every
// connection is closed (each waits for its peer's close frame, up to the
// adapter's close timeout, 256 at a time, so a peer that does not answer
// delays the end by that much) and every leave event delivered, and stops the hub's
// goroutines. It returns ctx's error if ctx ends first (the goroutines then
// stop anyway). http.Server.Shutdown does not close hijacked connections:
// call this from the same shutdown path. With HubConfig.Cluster set, the
// leaves reach OnEvent through the cluster: shut the hub down before the
// cluster node (a closed node delivers nothing, and Shutdown would wait for
// ctx).
func (h *Hub) Shutdown(ctx context.Context) error {
	if !h.closing.CompareAndSwap(false, true) {
		return ErrHubClosed
	}
	// Taken before any connection closes: every client gets the window for
	// the whole crowd that is about to redial.
	h.farewell.Store(int64(h.Advice()))
	for _, s := range h.shards {
		s.mu.Lock()
		for _, c := range append([]*conn(nil), s.all...) {
			s.step(c, fsm.Input{Kind: fsm.CloseRequested, Err: ErrShutdown})
		}
		s.unlock()
	}
	done := make(chan struct{})
	go func() {
		h.closeWG.Wait()
		// Sessions lingering after a lost connection leave too: no
		// resume can reach a hub that is gone.
		h.stepRegistry(RegistryInput{Kind: EndAll})
		h.waitDelivered()
		h.waitCluster(ctx)
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	close(h.stop)
	for _, s := range h.shards {
		s.mu.Lock()
		s.stopping = true
		s.wcond.Broadcast()
		s.mu.Unlock()
	}
	h.wg.Wait()
	h.eventsWG.Wait()
	if h.unsub != nil {
		h.unsub()
	}
	return err
}

// seenCluster records that OnEvent was handed the cluster's event seq (or
// a snapshot as of it); the first events may race the snapshot's record.
func (h *Hub) seenCluster(seq uint64) {
	for {
		old := h.clusterSeen.Load()
		if seq <= old || h.clusterSeen.CompareAndSwap(old, seq) {
			break
		}
	}
	select {
	case h.clusterKick <- struct{}{}:
	default:
	}
}

// waitCluster returns once OnEvent, a cluster subscription, has been handed
// every cluster event as of now, or ctx ends. Cluster.Local applies the
// hub's events to the cluster's view as it is called and the cluster
// delivers them later, on its own goroutine: after waitDelivered, this
// waits for the hub's own leaves to reach OnEvent.
func (h *Hub) waitCluster(ctx context.Context) {
	if h.unsub == nil {
		return
	}
	target := h.cfg.Cluster.Snapshot().Seq
	for h.clusterSeen.Load() < target {
		select {
		case <-h.clusterKick:
		case <-ctx.Done():
			return
		}
	}
}

// waitDelivered returns once every event queued so far has been delivered.
func (h *Hub) waitDelivered() {
	h.regMu.Lock()
	h.events.Wait()
	h.regMu.Unlock()
}

// messageWriter is what an adapter of the application-level format offers
// to send a heartbeat message of its own (gorillaws.Conn, coderws.Conn).
type messageWriter interface {
	SendMessage(ctx context.Context, m *wire.Message) error
}
