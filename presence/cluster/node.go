package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heartbeat-go/heartbeat/presence"
	"github.com/heartbeat-go/heartbeat/presence/internal/fanout"
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
	// RedisErrors counts Redis calls that failed or timed out (renewals,
	// writes, polls): a rising count with no fences is a slow or flaky
	// link the lease still covers.
	RedisErrors uint64
	// Restores counts how often this node found Redis holding an older
	// copy of its own sessions than it wrote (Redis restarted from a stale
	// snapshot, a failover to a replica that was behind) and rewrote them.
	Restores uint64
	// Holds counts how often Redis came back after failing to answer (or
	// restarted) and the node held every other node's sessions for a
	// grace instead of counting missing leases as deaths.
	Holds uint64
	// ViewAge is how long ago a poll of the other nodes last reached
	// Redis: how stale this node's view of them may be. It grows while
	// Redis does not answer; the view holds still meanwhile.
	ViewAge time.Duration
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
		redisErrors, restores, holds                                atomic.Uint64
		lastPoll                                                    atomic.Int64 // unix ns
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
		RedisErrors: n.st.redisErrors.Load(), Restores: n.st.restores.Load(), Holds: n.st.holds.Load(),
		ViewAge: time.Since(time.Unix(0, n.st.lastPoll.Load())),
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
