package cluster

import (
	"container/heap"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/heartbeat-go/heartbeat/presence"
)

// A simulated cluster: the pure cores (lease, peers, view) of a few nodes,
// driven as node.go drives them, against a model of the keyspace on
// virtual time (leases that expire, fenced writes, streams, an epoch),
// with node crashes and restarts, process pauses, Redis outages and Redis
// losing its data. No redis-server, no goroutine, no clock: a rapid case
// replays from its draws. The real-Redis tests check the driver and the
// scripts; this checks the rules.

// simT0 is the simulation's epoch.
var simT0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

const (
	simTTL   = 3 * time.Second
	simRenew = time.Second
)

// simNode is one node: its cores and the ground truth of its sessions.
type simNode struct {
	id      string
	lease   lease
	peers   *peers
	view    *view
	local   map[sessKey]presence.Meta
	left    map[sessKey]time.Duration // when each session last left
	pend    []op
	writing bool // a write is in flight: one at a time, as under Node.wmu
	crashed bool
	pauses  [][2]time.Duration // [from, until)
	gen     int                // bumped by a restart: events of an older process are dropped
}

func (n *simNode) pausedAt(t time.Duration) (time.Duration, bool) {
	for _, p := range n.pauses {
		if t >= p[0] && t < p[1] {
			return p[1], true
		}
	}
	return 0, false
}

type simEvent struct {
	at  time.Duration
	seq int
	fn  func()
}

type simQueue []simEvent

func (q simQueue) Len() int { return len(q) }
func (q simQueue) Less(i, j int) bool {
	return q[i].at < q[j].at || (q[i].at == q[j].at && q[i].seq < q[j].seq)
}
func (q simQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *simQueue) Push(x any)   { *q = append(*q, x.(simEvent)) }
func (q *simQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// simTB is what a run reports to: a *testing.T or a *rapid.T.
type simTB interface {
	Fatalf(format string, args ...any)
}

// simCluster is one run.
type simCluster struct {
	t       simTB
	now     time.Duration
	q       simQueue
	seq     int
	kv      *keyspace
	nodes   []*simNode
	lat     time.Duration      // one way, node to Redis
	outages [][2]time.Duration // Redis unreachable in [from, until)
	wipes   []time.Duration
	crashAt map[string]time.Duration

	// Planted bugs, for showing the checks catch them.
	renewFromReply bool // count the lease from the reply, not the send
	noGrace        bool // forget the grace after Redis lost its data
	keepDead       bool // never apply a node's drop

	falseLeaves, ghosts []string
	drops               []simDrop
}

// simDrop: observer counted node dead at.
type simDrop struct {
	observer, node string
	at             time.Duration
}

func (c *simCluster) at(d time.Duration, fn func()) {
	c.seq++
	heap.Push(&c.q, simEvent{at: d, seq: c.seq, fn: fn})
}

func (c *simCluster) redisDown(t time.Duration) bool {
	for _, o := range c.outages {
		if t >= o[0] && t < o[1] {
			return true
		}
	}
	return false
}

// onNode runs fn at d as node n's process does: not at all once it
// crashed or restarted, late if it is paused then.
func (c *simCluster) onNode(n *simNode, d time.Duration, fn func()) {
	gen := n.gen
	var run func()
	run = func() {
		if n.crashed || n.gen != gen {
			return
		}
		if until, ok := n.pausedAt(c.now); ok {
			c.at(until, run)
			return
		}
		fn()
		c.checkFence(n)
	}
	c.at(d, run)
}

// call is one round trip to Redis: apply runs on the keyspace at
// now + lat (false: Redis was unreachable), reply back on the node at
// now + 2 lat.
func (c *simCluster) call(n *simNode, apply func(at time.Duration), reply func(ok bool)) {
	ok := true
	c.at(c.now+c.lat, func() {
		if c.redisDown(c.now) {
			ok = false
			return
		}
		apply(c.now)
	})
	c.onNode(n, c.now+2*c.lat, func() { reply(ok) })
}

func (c *simCluster) wall() time.Time { return simT0.Add(c.now) }

// checkFence: a node that counts on its lease must still have it in Redis
// (unless Redis lost it with all its data).
func (c *simCluster) checkFence(n *simNode) {
	if !n.lease.holds(c.wall()) {
		return
	}
	for _, w := range c.wipes {
		if w <= c.now && c.now-w < simTTL {
			return
		}
	}
	if l, ok := c.kv.lease(n.id, c.now); !ok || l.inc != n.lease.inc {
		c.t.Fatalf("at %v node %s counts on incarnation %d's lease until %v, but Redis holds %+v (%v)",
			c.now, n.id, n.lease.inc, n.lease.deadline.Sub(simT0), l, ok)
	}
}

// leaseStep is leaseLoop's body.
func (c *simCluster) leaseStep(n *simNode) {
	sent := c.now
	if n.lease.due(c.wall()) {
		n.lease.fence()
	}
	next := func() { c.onNode(n, c.now+n.lease.next(c.wall()), func() { c.leaseStep(n) }) }
	if !n.lease.registered {
		set := maps.Clone(n.local)
		n.pend = nil // the set holds them
		prev := n.lease.inc
		var inc uint64
		var took bool
		c.call(n, func(at time.Duration) { inc, took = c.kv.register(n.id, prev, set, at) }, func(ok bool) {
			if ok && took {
				n.lease.taken(inc, simT0.Add(sent))
				c.flush(n)
			}
			next()
		})
		return
	}
	inc := n.lease.inc
	var held bool
	c.call(n, func(at time.Duration) { held = c.kv.renew(n.id, inc, at) }, func(ok bool) {
		switch {
		case !ok: // retried next period; fenced at the deadline
		case !held:
			n.lease.fence()
		default:
			from := sent
			if c.renewFromReply {
				from = c.now
			}
			n.lease.renewed(inc, simT0.Add(from))
			c.flush(n)
		}
		next()
	})
}

// change is Local: a session of this node joins or leaves.
func (c *simCluster) change(n *simNode, k sessKey, up bool) {
	o := op{up: up, key: k, reason: presence.LeaveClosed}
	if up {
		n.local[k] = nil
		n.view.up(n.id, k, nil, c.wall(), nil)
	} else {
		delete(n.local, k)
		n.left[k] = c.now
		n.view.down(n.id, k, presence.LeaveClosed, c.wall(), nil)
	}
	n.pend = append(n.pend, o)
	c.flush(n)
}

// flush is writeBatch: queued changes go out while the lease holds, one
// batch at a time. A failed batch's changes go back unless changed again
// meanwhile (a change is a state: the later one wins).
func (c *simCluster) flush(n *simNode) {
	if n.writing || len(n.pend) == 0 || !n.lease.holds(c.wall()) {
		return
	}
	batch, inc := n.pend, n.lease.inc
	n.pend = nil
	n.writing = true
	var wrote bool
	c.call(n, func(at time.Duration) { wrote = c.kv.write(n.id, inc, batch, at) }, func(ok bool) {
		n.writing = false
		switch {
		case !ok:
			var back []op
			for _, o := range batch {
				if !slices.ContainsFunc(n.pend, func(p op) bool { return p.key == o.key }) {
					back = append(back, o)
				}
			}
			n.pend = append(back, n.pend...)
		case !wrote:
			n.lease.fence()
		default:
			c.flush(n)
		}
	})
}

// poll is tick and peek in one round trip: the epoch, the node list and
// every node's lease and stream head.
func (c *simCluster) poll(n *simNode) {
	c.onNode(n, c.now+simRenew, func() { c.poll(n) })
	type peek struct{ lease, head string }
	var epoch string
	var members []string
	seen := map[string]peek{}
	c.call(n, func(at time.Duration) {
		if c.kv.epoch == "" {
			c.kv.epochs++
			c.kv.epoch = "e" + strconv.Itoa(c.kv.epochs)
		}
		epoch = c.kv.epoch
		members = slices.Sorted(maps.Keys(c.kv.nodes))
		ids := append(slices.Collect(maps.Keys(n.peers.remotes)), members...)
		for _, id := range ids {
			l, ok := c.kv.lease(id, at)
			p := peek{head: c.kv.head(id)}
			if ok {
				p.lease = strconv.FormatUint(l.inc, 10)
			}
			seen[id] = p
		}
	}, func(ok bool) {
		var out peerOut
		if !ok {
			n.peers.pollFailed(c.wall(), &out)
			c.settle(n, &out)
			return
		}
		rs := n.peers.polled(c.wall(), epoch, members, DefaultPrefix, &out)
		if c.noGrace {
			n.peers.graceUntil = time.Time{}
		}
		slices.SortFunc(rs, func(a, b *remote) int { return cmpStr(a.id, b.id) })
		for _, r := range rs {
			p := seen[r.id]
			n.peers.peeked(c.wall(), r, p.lease, p.head, &out)
		}
		c.settle(n, &out)
	})
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// settle is Node.settle; the follow-up reads take no time.
func (c *simCluster) settle(n *simNode, out *peerOut) {
	for _, err := range out.errs {
		c.t.Fatalf("node %s: %v", n.id, err)
	}
	for i := range out.views {
		ch := &out.views[i]
		if c.keepDead && ch.replace && ch.set == nil {
			continue
		}
		before := maps.Clone(n.view.nodes[ch.node])
		ch.apply(n.view, c.wall(), nil)
		if ch.replace && ch.set == nil {
			c.drops = append(c.drops, simDrop{observer: n.id, node: ch.node, at: c.now})
		}
		for k := range before {
			if _, ok := n.view.nodes[ch.node][k]; !ok {
				c.judgeLeave(n, ch.node, k)
			}
		}
	}
	for _, id := range out.resync {
		if r := n.peers.remotes[id]; r != nil {
			var o peerOut
			n.peers.snapshot(c.wall(), r, c.kv.snapshot(id, c.now), &o)
			c.settle(n, &o)
		}
	}
	for _, id := range out.fetch {
		r := n.peers.remotes[id]
		for more := r != nil; more; {
			var o peerOut
			more = n.peers.entries(r, c.kv.xrange(id, r.lastID, 50), 50, &o)
			c.settle(n, &o)
		}
	}
	for _, id := range out.reap {
		if r := n.peers.remotes[id]; r != nil {
			c.kv.reap(id, c.now)
			n.peers.reaped(r)
		}
	}
}

// judgeLeave: observer o's view lost session k of node id. It is false
// if that node still holds k and nothing excused the leave: the node
// neither crashed nor lost its lease lately, the observer heard from
// Redis lately, and Redis was reachable throughout.
func (c *simCluster) judgeLeave(o *simNode, id string, k sessKey) {
	var x *simNode
	for _, m := range c.nodes {
		if m.id == id {
			x = m
		}
	}
	if x == nil || x.crashed {
		return
	}
	window := simTTL + 2*simRenew + 4*c.lat
	if _, holds := x.local[k]; !holds {
		return // a real leave
	}
	if at, ok := x.left[k]; ok && c.now-at < window {
		return // a real leave, read late, of a session that joined again
	}
	if l, ok := c.kv.lapsed[id]; ok && c.now-l < window {
		return // its lease ended in Redis: it was out of the cluster
	}
	if at, ok := c.kv.gone[id]; ok && c.now-at >= simTTL {
		return // Redis lost its lease, and it did not come back within the grace
	}
	if at, ok := c.crashAt[id]; ok && c.now-at < window+simTTL {
		return // restarted lately: its old sessions left with its old process
	}
	for _, p := range o.pauses {
		if p[0] < c.now && c.now-p[1] < window {
			return // the observer was frozen
		}
	}
	for _, d := range c.outages {
		if d[0] < c.now && c.now-d[1] < window && d[1]-d[0] > simTTL/2 {
			return // the documented price of a long outage: the view is dropped, not guessed
		}
	}
	c.falseLeaves = append(c.falseLeaves, fmt.Sprintf("at %v node %s dropped %s/%s of live node %s", c.now, o.id, k.user, k.session, id))
}

// checkGhosts: a node crashed for longer than the bound has no session
// in any other live node's view, unless Redis or the observer was away.
func (c *simCluster) checkGhosts() {
	bound := simTTL + simRenew + 2*c.lat + simRenew
	for id, at := range c.crashAt {
		if c.now-at <= bound {
			continue
		}
		restarted := false
		for _, x := range c.nodes {
			restarted = restarted || (x.id == id && !x.crashed)
		}
		if restarted {
			continue
		}
		excused := false
		for _, d := range c.outages {
			excused = excused || (d[1] > at && d[0] < c.now)
		}
		for _, w := range c.wipes {
			// Redis lost the lease too: the others forgive a missing lease
			// for one TTL after they see the loss.
			excused = excused || (w > at-simTTL && w <= c.now && c.now-w <= simTTL+2*simRenew+2*c.lat)
		}
		for _, o := range c.nodes {
			if o.crashed || o.id == id || excused {
				continue
			}
			paused := false
			for _, p := range o.pauses {
				paused = paused || (p[1] > at && p[0] < c.now)
			}
			if len(o.view.nodes[id]) > 0 && !paused {
				c.ghosts = append(c.ghosts, fmt.Sprintf("at %v node %s still shows %d sessions of node %s, crashed at %v (bound %v)", c.now, o.id, len(o.view.nodes[id]), id, at, bound))
			}
		}
	}
}

func (c *simCluster) start(n *simNode, at time.Duration) {
	c.onNode(n, at, func() {
		c.leaseStep(n)
		c.poll(n)
	})
}

func newSimNode(id string) *simNode {
	return &simNode{id: id, lease: lease{ttl: simTTL, renew: simRenew}, peers: newPeers(id, simTTL, simRenew), view: newView(), local: map[sessKey]presence.Meta{}, left: map[sessKey]time.Duration{}}
}

// simScenario is what one run draws.
type simScenario struct {
	nodes   int
	lat     time.Duration
	churn   []simChange
	crashes []simCrash
	pauses  []simPause
	outages [][2]time.Duration
	wipes   []time.Duration
	end     time.Duration
}

type simChange struct {
	at   time.Duration
	node int
	sess int
	up   bool
}

type simCrash struct {
	at      time.Duration
	node    int
	restart time.Duration // 0: never
}

type simPause struct {
	node     int
	from, to time.Duration
}

// runSim plays sc; the checks fail c.t, the leave and ghost lists are
// returned for the caller to judge.
func runSim(t simTB, sc simScenario, plant func(*simCluster)) *simCluster {
	c := &simCluster{t: t, kv: newKeyspace(), lat: sc.lat, outages: sc.outages, wipes: sc.wipes, crashAt: map[string]time.Duration{}}
	if plant != nil {
		plant(c)
	}
	for i := range sc.nodes {
		n := newSimNode(fmt.Sprintf("n%d", i))
		c.nodes = append(c.nodes, n)
		c.start(n, time.Duration(i)*137*time.Millisecond)
	}
	for _, p := range sc.pauses {
		n := c.nodes[p.node]
		n.pauses = append(n.pauses, [2]time.Duration{p.from, p.to})
	}
	for _, ch := range sc.churn {
		c.at(ch.at, func() {
			n := c.nodes[ch.node]
			if n.crashed {
				return
			}
			if _, ok := n.pausedAt(c.now); ok {
				return // a frozen process takes no connections
			}
			k := sessKey{user: fmt.Sprintf("u%d", ch.sess%5), session: fmt.Sprintf("%s-%d", n.id, ch.sess)}
			if _, has := n.local[k]; has != ch.up {
				c.change(n, k, ch.up)
			}
		})
	}
	for _, cr := range sc.crashes {
		c.at(cr.at, func() {
			n := c.nodes[cr.node]
			if n.crashed {
				return
			}
			n.crashed = true
			c.crashAt[n.id] = c.now
			if cr.restart > 0 {
				c.at(c.now+cr.restart, func() {
					fresh := newSimNode(n.id)
					fresh.gen = n.gen + 1
					fresh.lease.inc = 0
					c.nodes[cr.node] = fresh
					c.start(fresh, c.now)
				})
			}
		})
	}
	for _, w := range sc.wipes {
		c.at(w, func() { c.kv.wipe(c.now) })
	}
	for c.q.Len() > 0 {
		e := heap.Pop(&c.q).(simEvent)
		if e.at > sc.end {
			break
		}
		c.now = e.at
		e.fn()
		c.checkGhosts()
	}
	return c
}

// converged: after a quiet stretch every live node's view is the union
// of the live nodes' sessions.
func converged(t simTB, c *simCluster) {
	want := map[sessKey]bool{}
	for _, n := range c.nodes {
		if !n.crashed {
			for k := range n.local {
				want[k] = true
			}
		}
	}
	for _, n := range c.nodes {
		if n.crashed {
			continue
		}
		got := map[sessKey]bool{}
		for k := range n.view.sess {
			got[k] = true
		}
		if !maps.Equal(got, want) {
			t.Fatalf("after the quiet end node %s shows %d sessions, the live nodes hold %d:\n%v\n%v", n.id, len(got), len(want), got, want)
		}
	}
}

func drawScenario(t *rapid.T) simScenario {
	sc := simScenario{
		nodes: rapid.IntRange(2, 4).Draw(t, "nodes"),
		lat:   time.Duration(rapid.IntRange(0, 200).Draw(t, "latency ms")) * time.Millisecond,
	}
	span := time.Duration(rapid.IntRange(10, 60).Draw(t, "seconds of faults")) * time.Second
	ms := func(label string, hi time.Duration) time.Duration {
		return time.Duration(rapid.Int64Range(0, hi.Milliseconds()).Draw(t, label)) * time.Millisecond
	}
	for i := range rapid.IntRange(0, 40).Draw(t, "changes") {
		sc.churn = append(sc.churn, simChange{
			at: ms(fmt.Sprintf("change %d at", i), span), node: rapid.IntRange(0, sc.nodes-1).Draw(t, fmt.Sprintf("change %d node", i)),
			sess: rapid.IntRange(0, 9).Draw(t, fmt.Sprintf("change %d session", i)), up: rapid.IntRange(0, 2).Draw(t, fmt.Sprintf("change %d joins", i)) > 0,
		})
	}
	for i := range rapid.IntRange(0, 2).Draw(t, "crashes") {
		cr := simCrash{at: ms(fmt.Sprintf("crash %d at", i), span), node: rapid.IntRange(0, sc.nodes-1).Draw(t, fmt.Sprintf("crash %d node", i))}
		if rapid.Bool().Draw(t, fmt.Sprintf("crash %d restarts", i)) {
			cr.restart = ms(fmt.Sprintf("crash %d restart after", i), 3*simTTL) + time.Millisecond
		}
		sc.crashes = append(sc.crashes, cr)
	}
	for i := range rapid.IntRange(0, 2).Draw(t, "pauses") {
		from := ms(fmt.Sprintf("pause %d at", i), span)
		sc.pauses = append(sc.pauses, simPause{node: rapid.IntRange(0, sc.nodes-1).Draw(t, fmt.Sprintf("pause %d node", i)),
			from: from, to: from + ms(fmt.Sprintf("pause %d length", i), 3*simTTL)})
	}
	for i := range rapid.IntRange(0, 2).Draw(t, "Redis outages") {
		from := ms(fmt.Sprintf("outage %d at", i), span)
		sc.outages = append(sc.outages, [2]time.Duration{from, from + ms(fmt.Sprintf("outage %d length", i), 2*simTTL)})
	}
	if rapid.IntRange(0, 3).Draw(t, "Redis loses its data") == 0 {
		sc.wipes = []time.Duration{ms("data lost at", span)}
	}
	sc.end = span + 4*simTTL // quiet: every rule has had its time
	return sc
}

// TestSimulatedCluster checks the cores' rules under rapid: a node never
// counts on a lease Redis has expired (fencing comes first), no node shows
// a crashed node's sessions past TTL + two renew periods and a round trip,
// no live node's session leaves while its lease held and Redis answered,
// and after a quiet stretch every view is the truth.
func TestSimulatedCluster(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		sc := drawScenario(t)
		c := runSim(t, sc, nil)
		if len(c.ghosts) > 0 {
			t.Fatalf("%d ghosts, first: %s", len(c.ghosts), c.ghosts[0])
		}
		if len(c.falseLeaves) > 0 {
			t.Fatalf("%d false leaves, first: %s", len(c.falseLeaves), c.falseLeaves[0])
		}
		converged(t, c)
	})
}

// The scenarios the issue names, one by one, with the figure each shows.
func TestSimulatedClusterFaults(t *testing.T) {
	base := func() simScenario {
		sc := simScenario{nodes: 3, lat: 20 * time.Millisecond, end: time.Minute}
		for i := range 30 {
			sc.churn = append(sc.churn, simChange{at: time.Duration(i) * 300 * time.Millisecond, node: i % 3, sess: i % 10, up: true})
		}
		return sc
	}
	t.Run("crash", func(t *testing.T) {
		sc := base()
		sc.crashes = []simCrash{{at: 20 * time.Second, node: 1}}
		c := runSim(t, sc, nil)
		if len(c.ghosts)+len(c.falseLeaves) > 0 {
			t.Fatalf("ghosts %v, false leaves %v", c.ghosts, c.falseLeaves)
		}
		seen := 0
		for _, d := range c.drops {
			if d.node == "n1" {
				seen++
				t.Logf("%s counted n1 dead %v after its crash (lease TTL %v, renew %v)", d.observer, d.at-20*time.Second, simTTL, simRenew)
			}
		}
		if seen != 2 {
			t.Fatalf("%d nodes counted the crashed node dead, want both others: %v", seen, c.drops)
		}
		converged(t, c)
	})
	t.Run("pause shorter than the lease", func(t *testing.T) {
		sc := base()
		sc.pauses = []simPause{{node: 1, from: 20 * time.Second, to: 21500 * time.Millisecond}}
		c := runSim(t, sc, nil)
		if len(c.falseLeaves) > 0 {
			t.Fatalf("false leaves %v", c.falseLeaves)
		}
		converged(t, c)
	})
	t.Run("Redis unreachable for a second", func(t *testing.T) {
		sc := base()
		sc.outages = [][2]time.Duration{{20 * time.Second, 21 * time.Second}}
		c := runSim(t, sc, nil)
		if len(c.falseLeaves) > 0 {
			t.Fatalf("false leaves %v", c.falseLeaves)
		}
		converged(t, c)
	})
	t.Run("Redis loses its data", func(t *testing.T) {
		sc := base()
		sc.wipes = []time.Duration{20 * time.Second}
		c := runSim(t, sc, nil)
		if len(c.falseLeaves) > 0 {
			t.Fatalf("false leaves %v", c.falseLeaves)
		}
		converged(t, c)
	})
}

// The checks catch planted bugs: each fails the run it should.
func TestSimulatedClusterCatchesBrokenRules(t *testing.T) {
	sc := simScenario{nodes: 3, lat: 200 * time.Millisecond, end: time.Minute}
	for i := range 30 {
		sc.churn = append(sc.churn, simChange{at: time.Duration(i) * 300 * time.Millisecond, node: i % 3, sess: i % 10, up: true})
	}
	t.Run("lease counted from the reply", func(t *testing.T) {
		s := sc
		s.pauses = []simPause{{node: 1, from: 20 * time.Second, to: 30 * time.Second}}
		fenced := false
		ft := &fatalRecorder{TB: t, hit: &fenced}
		func() {
			defer func() { _ = recover() }()
			runSim(ft, s, func(c *simCluster) { c.renewFromReply = true })
		}()
		if !fenced {
			t.Fatal("a lease counted from the reply outlives Redis's, and the fencing check did not fail")
		}
	})
	t.Run("no grace after lost data", func(t *testing.T) {
		s := sc
		s.wipes = []time.Duration{20 * time.Second}
		c := runSim(t, s, func(c *simCluster) { c.noGrace = true })
		if len(c.falseLeaves) == 0 {
			t.Fatal("without the grace, Redis losing its data caused no false leave the check saw")
		}
	})
	t.Run("dead nodes kept", func(t *testing.T) {
		s := sc
		s.crashes = []simCrash{{at: 20 * time.Second, node: 1}}
		c := runSim(t, s, func(c *simCluster) { c.keepDead = true })
		if len(c.ghosts) == 0 {
			t.Fatal("a crashed node's sessions were kept, and the ghost check did not see it")
		}
	})
}

// fatalRecorder turns Fatalf into a recorded hit and a stop.
type fatalRecorder struct {
	testing.TB
	hit *bool
}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	*f.hit = true
	f.Logf("caught: "+format, args...)
	panic(f)
}
