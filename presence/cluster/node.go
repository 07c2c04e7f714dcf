package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heartbeat-go/heartbeat/presence"
	"github.com/heartbeat-go/heartbeat/presence/internal/fanout"
	"github.com/redis/go-redis/v9"
)

// Defaults of Config, used where a field is zero.
const (
	// DefaultLeaseTTL is how long a node's lease lives in Redis after its
	// last renewal: a crashed node's sessions leave everywhere within
	// LeaseTTL + Renew + one round trip.
	DefaultLeaseTTL = 3 * time.Second
	// DefaultPrefix starts every key and channel name.
	DefaultPrefix = "hb"
	// DefaultStreamMax caps each node's event stream (approximately): a
	// node that missed more of another's batches resyncs from its set.
	DefaultStreamMax = 10000
	// LeaseMargin is the share of the TTL a node's own lease deadline keeps
	// in hand: it counts its lease lost at send time + (1 − LeaseMargin) ×
	// LeaseTTL, before Redis (which started the TTL no earlier than the send)
	// can let it expire, allowing this much clock-rate difference.
	LeaseMargin = 0.1
)

// Errors of a Node.
var (
	// ErrConfig is wrapped by every configuration error (and wraps
	// presence.ErrConfig).
	ErrConfig = fmt.Errorf("cluster: bad config: %w", presence.ErrConfig)
	// ErrNodeIDInUse: another live node holds this node ID's lease.
	ErrNodeIDInUse = errors.New("cluster: node ID in use by a live node")
	// ErrFenced: a write was refused because the lease no longer holds this
	// node's incarnation (it expired, or Redis lost it); the node
	// re-registers.
	ErrFenced = errors.New("cluster: lease lost, write fenced")
	// ErrClosed: the node is closed.
	ErrClosed = errors.New("cluster: node closed")
)

// Config configures a Node.
type Config struct {
	// Addr is the Redis address (host:port). Ignored if Client is set.
	Addr string
	// Client, if set, is the Redis client to use (TLS, auth, pools): a
	// *redis.Client, or a *redis.ClusterClient for Redis Cluster (each
	// node's keys share one hash slot). The node does not close it.
	Client redis.UniversalClient
	// NodeID names this server node: unique among live nodes, stable
	// across restarts; 1 to 64 of A–Z a–z 0–9 . _ -.
	NodeID string
	// Prefix starts every key and channel. Zero means DefaultPrefix.
	Prefix string
	// LeaseTTL is the node's lease in Redis. Zero means DefaultLeaseTTL;
	// 100 ms to 60 s.
	LeaseTTL time.Duration
	// Renew is how often the node renews its lease and polls the others'.
	// Zero means LeaseTTL/3; at most LeaseTTL/2.
	Renew time.Duration
	// StreamMax caps each node's stream. Zero means DefaultStreamMax. The
	// stream also drops entries older than 10 lease TTLs.
	StreamMax int64
	// OnError, if set, is told of entries in Redis that could not be read
	// (a *KeyspaceError, skipped) and of Redis errors; it must return
	// promptly.
	OnError func(error)
	// Logger receives lease changes at Info and Warn. Nil means none.
	Logger *slog.Logger
}

var nodeIDRe = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// keys are one node's Redis keys; the {n:<id>} hash tag keeps them in one
// slot of a Redis Cluster.
type keys struct {
	lease, inc, sess, stage, stream, ctr string
}

func nodeKeys(prefix, id string) keys {
	p := prefix + ":{n:" + id + "}:"
	return keys{lease: p + "lease", inc: p + "inc", sess: p + "s", stage: p + "stage", stream: p + "ev", ctr: p + "n"}
}

// Stats are a node's counters.
type Stats struct {
	// Registrations counts leases taken: 1 at start, one more after every
	// fence (a partition, a freeze, Redis losing its data).
	Registrations uint64
	// Fences counts how often this node found its lease lost.
	Fences uint64
	// Resyncs counts reads of another node's whole set (its first sight, a
	// new incarnation, a gap in its stream).
	Resyncs uint64
	// NodesDropped counts other nodes declared dead (lease gone).
	NodesDropped uint64
	// KeyspaceErrors counts entries skipped as unreadable.
	KeyspaceErrors uint64
	// LivenessCalls counts Redis commands sent for liveness: lease renewal
	// and the polling of other nodes, not session writes.
	LivenessCalls uint64
}

// Node is one server node's member of the cluster: it asserts this node's
// sessions in Redis under a lease, and keeps a view of every live node's
// sessions, with presence events for its changes. It implements
// presence.Cluster: set it as HubConfig.Cluster and the hub's Online,
// Snapshot, Subscribe and OnEvent cover the cluster. Its methods are safe
// for concurrent use.
type Node struct {
	cfg     Config
	rdb     redis.UniversalClient
	own     bool // rdb is ours to close
	k       keys
	nodes   string // the set of node IDs
	epochK  string
	channel string
	ttl     time.Duration
	renew   time.Duration

	mu      sync.Mutex
	view    *view
	evs     []presence.Event
	local   map[sessKey]presence.Meta      // this node's sessions
	pend    map[sessKey]op                 // changes not yet written
	order   []sessKey                      // pend's keys, oldest first
	events  *fanout.Fanout[presence.Event] // on mu: to the subscribers
	dirty   map[string]bool                // nodes pub/sub says have news
	closed  bool
	stopped chan struct{}

	wmu sync.Mutex // a write batch or a registration

	lmu     sync.Mutex  // lease state
	lease   lease       // on lmu
	fenceAt *time.Timer // fences at the deadline, whatever call is in flight

	peers *peers // sync goroutine only

	leaseKick, writeKick, syncKick chan struct{}
	wg                             sync.WaitGroup
	ps                             *redis.PubSub
	st                             struct {
		registrations, fences, resyncs, dropped, keyspace, liveness atomic.Uint64
	}
}

// New connects to Redis, takes this node's lease (waiting up to one lease
// TTL for a crashed predecessor's to expire; ErrNodeIDInUse if a live node
// renews it meanwhile), reads the other nodes' sessions and starts the
// node's goroutines. ctx bounds the start only; Close stops the node.
func New(ctx context.Context, cfg Config) (*Node, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.LeaseTTL == 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.Renew == 0 {
		cfg.Renew = cfg.LeaseTTL / 3
	}
	if cfg.StreamMax == 0 {
		cfg.StreamMax = DefaultStreamMax
	}
	switch {
	case !nodeIDRe.MatchString(cfg.NodeID):
		return nil, fmt.Errorf("%w: node ID %q: 1 to 64 of A-Z a-z 0-9 . _ -", ErrConfig, cfg.NodeID)
	case cfg.LeaseTTL < 100*time.Millisecond || cfg.LeaseTTL > time.Minute:
		return nil, fmt.Errorf("%w: lease TTL %v: 100ms to 1m", ErrConfig, cfg.LeaseTTL)
	case cfg.Renew <= 0 || cfg.Renew > cfg.LeaseTTL/2:
		return nil, fmt.Errorf("%w: renew period %v: positive, at most half the lease TTL %v", ErrConfig, cfg.Renew, cfg.LeaseTTL)
	case cfg.StreamMax < 100:
		return nil, fmt.Errorf("%w: stream cap %d: at least 100", ErrConfig, cfg.StreamMax)
	case cfg.Client == nil && cfg.Addr == "":
		return nil, fmt.Errorf("%w: no Redis address", ErrConfig)
	}
	n := &Node{
		cfg: cfg, rdb: cfg.Client, k: nodeKeys(cfg.Prefix, cfg.NodeID),
		nodes: cfg.Prefix + ":nodes", epochK: cfg.Prefix + ":epoch", channel: cfg.Prefix + ":ev",
		ttl: cfg.LeaseTTL, renew: cfg.Renew, lease: lease{ttl: cfg.LeaseTTL, renew: cfg.Renew},
		view: newView(), local: map[sessKey]presence.Meta{}, pend: map[sessKey]op{},
		dirty: map[string]bool{}, peers: newPeers(cfg.NodeID, cfg.LeaseTTL, cfg.Renew),
		stopped:   make(chan struct{}),
		leaseKick: make(chan struct{}, 1), writeKick: make(chan struct{}, 1),
		syncKick: make(chan struct{}, 1),
	}
	n.events = fanout.New[presence.Event](&n.mu, func(e presence.Event) uint64 { return e.Seq })
	if n.rdb == nil {
		n.own = true
		n.rdb = redis.NewClient(&redis.Options{
			// Every command carries a context that ends at the lease
			// deadline (or a lease from now): a round trip slower than R but
			// inside the lease must not fail. The socket timeouts only
			// catch what has no deadline.
			Addr: cfg.Addr, DialTimeout: cfg.LeaseTTL, ReadTimeout: cfg.LeaseTTL, WriteTimeout: cfg.LeaseTTL,
			ContextTimeoutEnabled: true,
			MaxRetries:            -1, // a retry is the next period's job, with fresh state
		})
	}
	if err := n.start(ctx); err != nil {
		if n.own {
			_ = n.rdb.Close()
		}
		return nil, err
	}
	return n, nil
}

func (n *Node) start(ctx context.Context) error {
	// Subscribe first, so no batch published after the first poll is missed.
	n.ps = n.rdb.Subscribe(ctx, n.channel)
	if _, err := n.ps.Receive(ctx); err != nil {
		_ = n.ps.Close()
		return fmt.Errorf("cluster: subscribe: %w", err)
	}
	if err := n.firstRegister(ctx); err != nil {
		_ = n.ps.Close()
		return err
	}
	n.tick()
	n.wg.Add(5)
	go n.leaseLoop()
	go n.writeLoop()
	go n.syncLoop()
	go n.listen()
	go n.deliver()
	return nil
}

// firstRegister takes the lease at start. A lease already held under this
// ID is a crashed predecessor's (it runs out within one TTL) or a live
// node's (it gets renewed): the node waits to see which.
func (n *Node) firstRegister(ctx context.Context) error {
	wait, cancel := context.WithTimeout(ctx, n.ttl+2*n.renew)
	defer cancel()
	var last time.Duration = -1
	for {
		err := n.register(wait)
		var held *heldError
		if !errors.As(err, &held) {
			return err
		}
		pttl, perr := n.rdb.PTTL(wait, n.k.lease).Result()
		switch {
		case perr != nil:
			return fmt.Errorf("%w: %q (held by incarnation %s; %w)", ErrNodeIDInUse, n.cfg.NodeID, held.holder, perr)
		case pttl > 0 && last >= 0 && pttl > last:
			return fmt.Errorf("%w: %q (incarnation %s renewed its lease)", ErrNodeIDInUse, n.cfg.NodeID, held.holder)
		}
		if pttl > 0 {
			last = pttl
		}
		t := time.NewTimer(n.renew / 4)
		select {
		case <-wait.Done():
			t.Stop()
			return fmt.Errorf("%w: %q (held by incarnation %s)", ErrNodeIDInUse, n.cfg.NodeID, held.holder)
		case <-t.C:
		}
	}
}

// heldError: the lease is held by another incarnation.
type heldError struct{ holder string }

func (e *heldError) Error() string { return "lease held by incarnation " + e.holder }
func (e *heldError) Unwrap() error { return ErrNodeIDInUse }

// register takes the lease under a new incarnation with this node's whole
// session set; changes queued so far are in it.
func (n *Node) register(ctx context.Context) error {
	n.wmu.Lock()
	defer n.wmu.Unlock()
	n.mu.Lock()
	set := make(map[sessKey]presence.Meta, len(n.local))
	for k, m := range n.local {
		set[k] = m
	}
	n.mu.Unlock()
	inc, err := reserveScript.Run(ctx, n.rdb, []string{n.k.inc}, time.Now().UnixMilli()).Text()
	if err != nil {
		return fmt.Errorf("cluster: register: %w", err)
	}
	if _, err := decodeInc(inc); err != nil {
		return fmt.Errorf("cluster: register: %w", &KeyspaceError{Key: n.k.inc, Reason: err.Error()})
	}
	// Stage the set, in chunks (a pipeline, one round trip).
	_, err = n.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, n.k.stage)
		args := make([]any, 0, 2000)
		for k, m := range set {
			args = append(args, encodeField(k), encodeMeta(m))
			if len(args) == cap(args) {
				p.HSet(ctx, n.k.stage, args...)
				args = make([]any, 0, 2000)
			}
		}
		if len(args) > 0 {
			p.HSet(ctx, n.k.stage, args...)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("cluster: register: stage: %w", err)
	}
	n.lmu.Lock()
	prev := ""
	if n.lease.inc != 0 {
		prev = strconv.FormatUint(n.lease.inc, 10)
	}
	n.lmu.Unlock()
	sent := time.Now()
	res, err := registerScript.Run(ctx, n.rdb, []string{n.k.lease, n.k.sess, n.k.stage, n.k.stream, n.k.ctr},
		inc, prev, n.ttl.Milliseconds(), n.cfg.StreamMax, n.channel, n.cfg.NodeID, n.streamAge().Milliseconds()).Slice()
	if err != nil {
		return fmt.Errorf("cluster: register: %w", err)
	}
	if len(res) != 2 {
		return fmt.Errorf("cluster: register: reply %v", res)
	}
	if ok, _ := res[0].(int64); ok != 1 {
		n.rdb.Del(ctx, n.k.stage)
		return &heldError{holder: fmt.Sprint(res[1])}
	}
	n.rdb.SAdd(ctx, n.nodes, n.cfg.NodeID)
	v, _ := strconv.ParseUint(inc, 10, 64)
	n.lmu.Lock()
	n.lease.taken(v, sent)
	n.armFence()
	n.lmu.Unlock()
	// Changes queued before the snapshot are in the set and stay queued:
	// rewriting an included change is harmless (a change is a state).
	n.st.registrations.Add(1)
	n.logInfo("lease taken", "incarnation", v, "sessions", len(set))
	return nil
}

func (n *Node) logInfo(msg string, args ...any) {
	if n.cfg.Logger != nil {
		n.cfg.Logger.Info("cluster: "+msg, append([]any{"node", n.cfg.NodeID}, args...)...)
	}
}

func (n *Node) report(err error) {
	var ke *KeyspaceError
	if errors.As(err, &ke) {
		n.st.keyspace.Add(1)
	}
	if n.cfg.OnError != nil {
		n.cfg.OnError(err)
	}
	if n.cfg.Logger != nil {
		n.cfg.Logger.Warn("cluster: "+err.Error(), "node", n.cfg.NodeID)
	}
}

func kick(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// fence: the lease is lost (or about to be, by our own count). The node
// stops writing; the lease goroutine re-registers.
func (n *Node) fence(why string) {
	n.lmu.Lock()
	was := n.lease.fence()
	n.lmu.Unlock()
	if was {
		n.st.fences.Add(1)
		if n.cfg.Logger != nil {
			n.cfg.Logger.Warn("cluster: lease lost: "+why, "node", n.cfg.NodeID)
		}
	}
	kick(n.leaseKick)
}

// Registered reports whether the node holds its lease by its own count:
// while false, the other nodes do not (or will not, within one TTL) count
// its sessions.
func (n *Node) Registered() bool {
	n.lmu.Lock()
	defer n.lmu.Unlock()
	return n.lease.holds(time.Now())
}

// leaseLoop renews the lease every Renew, fences at the node's own lease
// deadline, and re-registers after a fence.
func (n *Node) leaseLoop() {
	defer n.wg.Done()
	t := time.NewTimer(n.renew)
	defer t.Stop()
	for {
		select {
		case <-n.stopped:
			return
		case <-t.C:
		case <-n.leaseKick:
		}
		n.leaseStep()
		n.lmu.Lock()
		next := n.lease.next(time.Now())
		n.lmu.Unlock()
		t.Reset(next)
	}
}

func (n *Node) leaseStep() {
	n.lmu.Lock()
	now := time.Now()
	due := n.lease.due(now)
	reg, inc, dl := n.lease.registered && !due, n.lease.inc, n.lease.deadline
	n.lmu.Unlock()
	if due {
		n.fence("not renewed by the node's own lease deadline")
	}
	if !reg {
		ctx, cancel := context.WithTimeout(context.Background(), n.ttl)
		err := n.register(ctx)
		cancel()
		if err != nil {
			n.report(err)
		} else {
			kick(n.writeKick)
		}
		return
	}
	ctx, cancel := context.WithDeadline(context.Background(), dl)
	defer cancel()
	var renewed *redis.Cmd
	_, err := n.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		renewed = renewScript.EvalSha(ctx, p, []string{n.k.lease}, inc, n.ttl.Milliseconds())
		p.SAdd(ctx, n.nodes, n.cfg.NodeID)
		return nil
	})
	n.st.liveness.Add(2)
	if err != nil && isNoScript(renewed.Err()) {
		_, err = renewScript.Load(ctx, n.rdb).Result()
		if err == nil {
			renewed = renewScript.Run(ctx, n.rdb, []string{n.k.lease}, inc, n.ttl.Milliseconds())
			err = renewed.Err()
		}
	}
	if err != nil {
		return // retried next period; fenced at the deadline if it keeps failing
	}
	if v, _ := renewed.Int64(); v != 1 {
		n.fence("Redis no longer holds this incarnation's lease")
		return
	}
	n.lmu.Lock()
	if n.lease.renewed(inc, now) {
		n.armFence()
	}
	n.lmu.Unlock()
}

// armFence sets the timer that fences the node at its deadline: a call
// stuck on a dead link (a dial's handshake has its own timeout) must not
// delay the node's knowing. lmu is held.
func (n *Node) armFence() {
	d := time.Until(n.lease.deadline)
	if n.fenceAt == nil {
		n.fenceAt = time.AfterFunc(d, n.fenceIfDue)
		return
	}
	n.fenceAt.Reset(d)
}

func (n *Node) fenceIfDue() {
	n.lmu.Lock()
	due := n.lease.due(time.Now())
	n.lmu.Unlock()
	if due {
		n.fence("not renewed by the node's own lease deadline")
	}
}

func isNoScript(err error) bool {
	return err != nil && redis.HasErrorPrefix(err, "NOSCRIPT")
}

// Local is handed this node's own presence events, in order (the hub calls
// it on its event goroutine): it updates the view at once and queues the
// change for Redis. UserJoined and UserLeft are derived cluster-wide and
// ignored here.
func (n *Node) Local(e presence.Event) {
	k := sessKey{e.User, e.Session}
	var o op
	switch e.Kind {
	case presence.SessionJoined, presence.SessionUpdated:
		o = op{up: true, key: k, meta: e.Meta}
	case presence.SessionLeft:
		o = op{key: k, reason: e.Reason}
	default:
		return
	}
	now := time.Now()
	n.mu.Lock()
	if o.up {
		n.local[k] = o.meta
		n.evs = n.view.up(n.cfg.NodeID, k, o.meta, now, n.evs[:0])
	} else {
		delete(n.local, k)
		n.evs = n.view.down(n.cfg.NodeID, k, o.reason, now, n.evs[:0])
	}
	if _, ok := n.pend[k]; !ok {
		n.order = append(n.order, k)
	}
	n.pend[k] = o
	n.enqueue()
	n.mu.Unlock()
	kick(n.writeKick)
}

// enqueue queues n.evs for delivery. mu is held.
func (n *Node) enqueue() {
	n.events.Push(n.evs)
}

// maxBatch bounds one write: Lua's unpack takes a few thousand values.
const maxBatch = 500

// writeLoop writes queued changes in batches, fenced by the lease.
func (n *Node) writeLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.renew / 2) // retries after an error
	defer t.Stop()
	for {
		select {
		case <-n.stopped:
			return
		case <-n.writeKick:
		case <-t.C:
		}
		for n.writeBatch() {
		}
	}
}

// writeBatch writes one batch; it reports whether to go on at once.
func (n *Node) writeBatch() bool {
	n.wmu.Lock()
	defer n.wmu.Unlock()
	n.lmu.Lock()
	ok, inc, dl := n.lease.holds(time.Now()), n.lease.inc, n.lease.deadline
	n.lmu.Unlock()
	if !ok {
		return false // the next registration writes the whole set
	}
	n.mu.Lock()
	cnt := min(len(n.order), maxBatch)
	batch := make([]op, 0, cnt)
	for _, k := range n.order[:cnt] {
		batch = append(batch, n.pend[k])
		delete(n.pend, k)
	}
	n.order = append(n.order[:0], n.order[cnt:]...)
	n.mu.Unlock()
	if len(batch) == 0 {
		return false
	}
	args := make([]any, 0, 5+2*len(batch))
	args = append(args, inc, n.cfg.StreamMax, n.channel, n.cfg.NodeID, n.streamAge().Milliseconds())
	for _, o := range batch {
		f, v := encodeOp(o)
		args = append(args, f, v)
	}
	ctx, cancel := context.WithDeadline(context.Background(), dl)
	defer cancel()
	err := writeScript.Run(ctx, n.rdb, []string{n.k.lease, n.k.sess, n.k.stream, n.k.ctr}, args...).Err()
	switch {
	case err == nil:
		return true
	case errors.Is(err, redis.Nil):
		n.fence("a write was refused")
		return false
	default:
		// Put back what was not changed again meanwhile: a change is a
		// state, so writing it twice is harmless.
		n.mu.Lock()
		for _, o := range batch {
			if _, ok := n.pend[o.key]; !ok {
				n.pend[o.key] = o
				n.order = append(n.order, o.key)
			}
		}
		n.mu.Unlock()
		return false
	}
}

// listen turns pub/sub notices into polls of the nodes they name.
func (n *Node) listen() {
	defer n.wg.Done()
	ch := n.ps.Channel()
	for {
		select {
		case <-n.stopped:
			return
		case m, ok := <-ch:
			if !ok {
				return
			}
			if m.Payload == n.cfg.NodeID || !nodeIDRe.MatchString(m.Payload) {
				continue
			}
			n.mu.Lock()
			n.dirty[m.Payload] = true
			n.mu.Unlock()
			kick(n.syncKick)
		}
	}
}

// syncLoop polls every node each Renew and the ones pub/sub names at once.
func (n *Node) syncLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.renew)
	defer t.Stop()
	for {
		select {
		case <-n.stopped:
			return
		case <-t.C:
			n.tick()
		case <-n.syncKick:
			n.mu.Lock()
			ids := make([]string, 0, len(n.dirty))
			for id := range n.dirty {
				ids = append(ids, id)
			}
			clear(n.dirty)
			n.mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), n.ttl)
			var out peerOut
			rs := n.peers.named(ids, n.cfg.Prefix, &out)
			n.settle(ctx, &out)
			n.peek(ctx, rs, false)
			cancel()
		}
	}
}

// tick polls the epoch, the node list and every node's lease and stream
// head: a constant number of commands per node, whatever the sessions.
func (n *Node) tick() {
	ctx, cancel := context.WithTimeout(context.Background(), n.ttl)
	defer cancel()
	var ep *redis.StringCmd
	var mem *redis.StringSliceCmd
	_, err := n.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		ep = p.Get(ctx, n.epochK)
		mem = p.SMembers(ctx, n.nodes)
		return nil
	})
	n.st.liveness.Add(2)
	if err != nil && !errors.Is(err, redis.Nil) {
		n.stale(ctx)
		return
	}
	e, err := ep.Result()
	if errors.Is(err, redis.Nil) {
		var b [8]byte
		_, _ = rand.Read(b[:])
		n.rdb.SetNX(ctx, n.epochK, hex.EncodeToString(b[:]), 0)
		e, err = n.rdb.Get(ctx, n.epochK).Result()
		n.st.liveness.Add(2)
	}
	if err != nil {
		n.stale(ctx)
		return
	}
	var out peerOut
	rs := n.peers.polled(time.Now(), e, mem.Val(), n.cfg.Prefix, &out)
	n.settle(ctx, &out)
	n.peek(ctx, rs, true)
}

// stale: Redis did not answer a poll (see peers.pollFailed).
func (n *Node) stale(ctx context.Context) {
	var out peerOut
	n.peers.pollFailed(time.Now(), &out)
	n.settle(ctx, &out)
}

// settle carries out what the peers' rules asked: the view changes, with
// their events, then the reads (which settle their own replies).
func (n *Node) settle(ctx context.Context, out *peerOut) {
	if len(out.views) > 0 {
		now := time.Now()
		n.mu.Lock()
		n.evs = n.evs[:0]
		for i := range out.views {
			n.evs = out.views[i].apply(n.view, now, n.evs)
		}
		n.enqueue()
		n.mu.Unlock()
	}
	for _, err := range out.errs {
		n.report(err)
	}
	for _, nt := range out.notes {
		if nt.peer != "" {
			n.logInfo(nt.msg, "peer", nt.peer)
		} else {
			n.logInfo(nt.msg)
		}
	}
	n.st.dropped.Add(uint64(out.dropped))
	for _, id := range out.resync {
		if r := n.peers.remotes[id]; r != nil {
			n.resync(ctx, r)
		}
	}
	for _, id := range out.fetch {
		if r := n.peers.remotes[id]; r != nil {
			n.fetch(ctx, r)
		}
	}
	for _, id := range out.reap {
		if r := n.peers.remotes[id]; r != nil {
			n.reap(ctx, r)
		}
	}
}

// peek reads the lease and stream head of the nodes named, one pipeline,
// and settles what the replies mean.
func (n *Node) peek(ctx context.Context, rs []*remote, liveness bool) {
	if len(rs) == 0 {
		return
	}
	cmds := make([]*redis.Cmd, 0, len(rs))
	_, _ = n.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, r := range rs {
			cmds = append(cmds, p.Eval(ctx, peekScript, []string{r.k.lease, r.k.stream}))
		}
		return nil
	})
	if liveness {
		n.st.liveness.Add(uint64(len(rs)))
	}
	var out peerOut
	now := time.Now()
	for i, r := range rs {
		res, err := cmds[i].StringSlice()
		if err != nil || len(res) != 2 {
			continue // unreachable: try again next period
		}
		n.peers.peeked(now, r, res[0], res[1], &out)
	}
	n.settle(ctx, &out)
}

// reapAfter, in lease TTLs, is how long a node's lease stays missing
// before its keys and its ID are removed: the sessions of a node that
// never comes back must not stay in Redis for ever.
var reapAfter = 10

// reap removes a long-dead node's sessions, stream and ID. The script
// deletes nothing if the node has taken its lease again meanwhile, and
// leaves its stage alone (a registration in progress); a live node adds
// its ID back with every renewal.
func (n *Node) reap(ctx context.Context, r *remote) {
	if err := reapScript.Run(ctx, n.rdb, []string{r.k.lease, r.k.sess, r.k.stream, r.k.ctr, r.k.inc}).Err(); err != nil {
		return
	}
	if err := n.rdb.SRem(ctx, n.nodes, r.id).Err(); err != nil {
		return
	}
	n.peers.reaped(r)
	n.logInfo("dead node's keys removed", "peer", r.id)
}

// resync reads a node's whole set at one instant.
func (n *Node) resync(ctx context.Context, r *remote) {
	res, err := snapScript.Run(ctx, n.rdb, []string{r.k.lease, r.k.sess, r.k.stream, r.k.ctr}).StringSlice()
	if err != nil {
		return
	}
	var out peerOut
	if n.peers.snapshot(time.Now(), r, res, &out) {
		n.st.resyncs.Add(1)
	}
	n.settle(ctx, &out)
}

// fetch reads a node's stream after the last entry applied, a page at a
// time.
func (n *Node) fetch(ctx context.Context, r *remote) {
	for {
		start := "-"
		if r.lastID != "" {
			start = "(" + r.lastID
		}
		raw, err := n.rdb.Do(ctx, "XRANGE", r.k.stream, start, "+", "COUNT", streamPage).Slice()
		if err != nil {
			return
		}
		var out peerOut
		more := false
		if msgs, err := rawEntries(raw); err != nil {
			n.peers.badStream(r, err, &out)
		} else {
			more = n.peers.entries(r, msgs, streamPage, &out)
		}
		n.settle(ctx, &out)
		if !more {
			return
		}
	}
}

// streamPage is how many stream entries one read takes.
const streamPage = 1000

// deliver hands queued events to the subscribers, in order.
func (n *Node) deliver() {
	defer n.wg.Done()
	n.events.Run(n.stopped, nil)
}

// Online reports whether user has a session on any live node.
func (n *Node) Online(user string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.view.users[user] > 0
}

// Snapshot returns who is online cluster-wide, as of its Seq (this node's
// own event numbering). SessionInfo.Conns counts the nodes holding a
// session.
func (n *Node) Snapshot() presence.Snapshot {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.view.snapshot()
}

// Subscribe returns who is online cluster-wide and calls fn with every
// later event, in order, none dropped, none twice, on the node's delivery
// goroutine, until cancel is called.
func (n *Node) Subscribe(fn func(presence.Event)) (presence.Snapshot, func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	snap := n.view.snapshot()
	return snap, n.events.Subscribe(snap.Seq, fn)
}

// Stats returns the node's counters.
func (n *Node) Stats() Stats {
	return Stats{
		Registrations: n.st.registrations.Load(), Fences: n.st.fences.Load(), Resyncs: n.st.resyncs.Load(),
		NodesDropped: n.st.dropped.Load(), KeyspaceErrors: n.st.keyspace.Load(), LivenessCalls: n.st.liveness.Load(),
	}
}

// Close stops the node and, if it still holds its lease, removes its lease,
// sessions and stream from Redis and its ID from the node list, so the
// other nodes emit its users' leaves at once rather than after the TTL; its
// incarnation expires after 10 lease TTLs, and the last node to close
// removes the cluster's epoch. Call it after the hub's Shutdown.
func (n *Node) Close(ctx context.Context) error {
	if !n.halt() {
		return ErrClosed
	}
	n.lmu.Lock()
	inc := n.lease.inc
	n.lmu.Unlock()
	var err error
	if inc != 0 {
		var left int64
		left, err = leaveScript.Run(ctx, n.rdb, []string{n.k.lease, n.k.sess, n.k.ctr, n.k.stream, n.k.inc},
			inc, n.channel, n.cfg.NodeID, n.streamAge().Milliseconds()).Int64()
		if err == nil && left == 1 { // the lease was still ours: the ID is ours to take out
			err = n.leaveList(ctx)
		}
	}
	if n.own {
		_ = n.rdb.Close()
	}
	return err
}

// streamAge is how long a node's stream keeps an entry, and its
// incarnation outlives a clean close: a node that has not read another's
// stream for this long has dropped or resynced it anyway.
func (n *Node) streamAge() time.Duration { return time.Duration(reapAfter) * n.ttl }

// leaveList takes the node's ID out of the node list after a clean close
// (the others still poll the nodes they know, see the lease gone and drop
// its sessions), and the last node out removes the cluster's epoch, so a
// Redis the cluster has left holds none of its keys. A node that joins
// meanwhile and finds the epoch gone draws a new one, which the others
// take for lost data: a grace of one lease TTL, no leave.
func (n *Node) leaveList(ctx context.Context) error {
	if err := n.rdb.SRem(ctx, n.nodes, n.cfg.NodeID).Err(); err != nil {
		return err
	}
	left, err := n.rdb.SCard(ctx, n.nodes).Result()
	if err != nil || left > 0 {
		return err
	}
	return n.rdb.Del(ctx, n.epochK).Err()
}

// halt stops the goroutines, delivering what is queued; false if already
// stopped.
func (n *Node) halt() bool {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return false
	}
	n.closed = true
	n.events.Wait()
	n.mu.Unlock()
	close(n.stopped)
	_ = n.ps.Close()
	n.wg.Wait()
	n.lmu.Lock()
	if n.fenceAt != nil {
		n.fenceAt.Stop()
	}
	n.lmu.Unlock()
	return true
}
