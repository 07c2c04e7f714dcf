package cluster

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/heartbeat-go/heartbeat/presence"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if nodeMainIfChild() {
		return
	}
	redis.SetLogger(quiet{}) // dial failures are the point of the fault tests
	goleak.VerifyTestMain(m)
}

func TestJoinUpdateLeaveReachOtherNodes(t *testing.T) {
	r := startRedis(t)
	a, ma := startNode(t, testConfig(r, "a"))
	b, mb := startNode(t, testConfig(r, "b"))
	join(a, "ann", "tab1", presence.Meta{"dev": "web"})
	join(b, "ann", "phone", nil)
	join(b, "bob", "x", nil)
	all := []string{"ann/phone", "ann/tab1", "bob/x"}
	sameView(t, 3*time.Second, all, []*Node{a, b}, []*model{ma, mb})
	if !b.Online("ann") || !a.Online("bob") {
		t.Fatal("Online disagrees with the snapshot")
	}
	a.Local(presence.Event{Kind: presence.SessionUpdated, User: "ann", Session: "tab1", Meta: presence.Meta{"dev": "app"}})
	waitFor(t, 3*time.Second, func() bool { return mb.count(presence.SessionUpdated, 0) == 1 }, func() string { return fmt.Sprint(mb.evs) })
	leave(a, "ann", "tab1")
	leave(b, "ann", "phone")
	sameView(t, 3*time.Second, []string{"bob/x"}, []*Node{a, b}, []*model{ma, mb})
	for _, m := range []*model{ma, mb} {
		m.check()
		if j, l := m.count(presence.UserJoined, 0), m.count(presence.UserLeft, 0); j != 2 || l != 1 {
			t.Errorf("%s: %d user joins and %d user leaves, want 2 and 1: %v", m.name, j, l, m.evs)
		}
	}
}

// A session two nodes hold (a reconnect landed elsewhere before the old
// node let go) is one session: it leaves when the last node lets go.
func TestSessionOnTwoNodesLeavesOnce(t *testing.T) {
	r := startRedis(t)
	a, ma := startNode(t, testConfig(r, "a"))
	b, mb := startNode(t, testConfig(r, "b"))
	join(a, "ann", "tab1", nil)
	sameView(t, 3*time.Second, []string{"ann/tab1"}, []*Node{a, b}, []*model{ma, mb})
	join(b, "ann", "tab1", nil)
	held := func(n *Node, c int) func() bool {
		return func() bool {
			s := n.Snapshot()
			return len(s.Users) == 1 && s.Users[0].Sessions[0].Conns == c
		}
	}
	waitFor(t, 3*time.Second, held(a, 2), func() string { return fmt.Sprint(a.Snapshot()) })
	leave(a, "ann", "tab1")
	waitFor(t, 3*time.Second, held(b, 1), func() string { return fmt.Sprint(b.Snapshot()) })
	leave(b, "ann", "tab1")
	sameView(t, 3*time.Second, nil, []*Node{a, b}, []*model{ma, mb})
	for _, m := range []*model{ma, mb} {
		m.check()
		if c := m.count(presence.SessionLeft, 0); c != 1 {
			t.Errorf("%s: %d session leaves, want 1: %v", m.name, c, m.evs)
		}
	}
}

// A node that stops without a goodbye: the others emit its users' leaves
// within LeaseTTL + Renew (+ a round trip and scheduling).
func TestCrashedNodeLeavesWithinLease(t *testing.T) {
	r := startRedis(t)
	a, ma := startNode(t, testConfig(r, "a"))
	b, mb := startNode(t, testConfig(r, "b"))
	for i := range 20 {
		join(a, fmt.Sprint("u", i), "s", nil)
	}
	join(b, "u0", "other", nil)
	var all []string
	for i := range 20 {
		all = append(all, fmt.Sprintf("u%d/s", i))
	}
	all = append(all, "u0/other")
	sameView(t, 3*time.Second, all, []*Node{a, b}, []*model{ma, mb})
	a.abandon()
	took := sameView(t, testTTL+testRenew+2*time.Second, []string{"u0/other"}, []*Node{b}, []*model{mb})
	t.Logf("leaves %v after the crash (bound %v + %v)", took, testTTL, testRenew)
	mb.check()
	if c := mb.count(presence.UserLeft, 0); c != 19 {
		t.Errorf("%d user leaves, want 19 (u0 stays on b)", c)
	}
}

// A node restarted under the same ID does not bring back its previous
// incarnation's sessions, and a write of the old incarnation is fenced.
func TestRestartedNodeFencesOldIncarnation(t *testing.T) {
	r := startRedis(t)
	a, _ := startNode(t, testConfig(r, "a"))
	b, mb := startNode(t, testConfig(r, "b"))
	join(a, "old", "s", nil)
	sameView(t, 3*time.Second, []string{"old/s"}, []*Node{b}, []*model{mb})
	oldInc := a.lease.inc
	a.abandon()
	a2, _ := startNode(t, testConfig(r, "a")) // waits out the old lease
	if a2.lease.inc <= oldInc {
		t.Fatalf("incarnation %d after %d", a2.lease.inc, oldInc)
	}
	join(a2, "new", "s", nil)
	waitFor(t, 3*time.Second, func() bool { return fmt.Sprint(mb.online()) == "[new/s]" }, func() string { return fmt.Sprint(mb.online()) })
	// The old incarnation, resumed, tries to write: refused.
	ctx := context.Background()
	err := writeScript.Run(ctx, r.client(t), []string{a2.k.lease, a2.k.sess, a2.k.stream, a2.k.ctr},
		oldInc, 1000, "hb:ev", "a", 30000, "u"+encodeField(sessKey{"old", "s"}), "").Err()
	if !errors.Is(err, redis.Nil) {
		t.Fatalf("old incarnation's write: %v, want fenced (nil reply)", err)
	}
	mb.check()
	if c := mb.count(presence.SessionJoined, 0); c != 2 {
		t.Errorf("%d joins on b, want 2 (old/s once, new/s once): %v", c, mb.evs)
	}
}

func TestNodeIDCollisionRefused(t *testing.T) {
	r := startRedis(t)
	startNode(t, testConfig(r, "a"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	n, err := New(ctx, testConfig(r, "a"))
	if err == nil {
		_ = n.Close(ctx)
		t.Fatal("a second node a started")
	}
	if !errors.Is(err, ErrNodeIDInUse) {
		t.Fatalf("err %v, want ErrNodeIDInUse", err)
	}
	if d := time.Since(start); d > testTTL+3*testRenew {
		t.Errorf("refused after %v, want within TTL + 2 renew periods", d)
	}
}

func TestConfigRefused(t *testing.T) {
	for _, c := range []Config{
		{Addr: "x", NodeID: ""},
		{Addr: "x", NodeID: "a{b}"},
		{Addr: "x", NodeID: "a", LeaseTTL: time.Millisecond},
		{Addr: "x", NodeID: "a", LeaseTTL: time.Second, Renew: time.Second},
		{NodeID: "a"},
	} {
		if _, err := New(context.Background(), c); !errors.Is(err, ErrConfig) || !errors.Is(err, presence.ErrConfig) {
			t.Errorf("%+v: err %v, want ErrConfig", c, err)
		}
	}
}

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

// A node that missed batches the stream no longer holds (the cap trimmed
// them) notices the gap by the batch numbers and resyncs from the set:
// each missed change is one event, none twice.
func TestStreamGapResyncs(t *testing.T) {
	r := startRedis(t)
	rc := r.client(t)
	ctx := context.Background()
	a, ma := startNode(t, testConfig(r, "a"))
	b, _ := startNode(t, testConfig(r, "b"))
	join(b, "ann", "s", nil)
	sameView(t, 3*time.Second, []string{"ann/s"}, []*Node{a}, []*model{ma})
	a.halt() // a's goroutines stop; its client stays open, its view stays
	t.Cleanup(func() { _ = a.rdb.Close() })
	kb := nodeKeys(DefaultPrefix, "b")
	for i := range 5 {
		join(b, "u", fmt.Sprint(i), nil)
		want := int64(i + 2)
		waitFor(t, 3*time.Second, func() bool { return rc.HLen(ctx, kb.sess).Val() == want }, func() string { return "b's write" })
	}
	leave(b, "ann", "s")
	waitFor(t, 3*time.Second, func() bool { return rc.HLen(ctx, kb.sess).Val() == 5 }, func() string { return "b's write" })
	if err := rc.XTrimMaxLen(ctx, kb.stream, 1).Err(); err != nil {
		t.Fatal(err)
	}
	before := a.Stats().Resyncs
	a.peek(ctx, []*remote{a.peers.remotes["b"]}, false)
	if a.Stats().Resyncs != before+1 {
		t.Errorf("resyncs %d → %d, want one more", before, a.Stats().Resyncs)
	}
	a.mu.Lock()
	got := snapKeys(a.view.snapshot())
	evs := a.events.Pending() // not delivered: a's goroutines are stopped
	a.mu.Unlock()
	if fmt.Sprint(got) != "[u/0 u/1 u/2 u/3 u/4]" {
		t.Fatalf("a's view after the resync: %v", got)
	}
	for _, e := range evs {
		ma.apply(e)
	}
	ma.check()
	if j, l := ma.count(presence.SessionJoined, 0), ma.count(presence.SessionLeft, 0); j != 6 || l != 1 {
		t.Errorf("%d joins and %d leaves, want 6 and 1: %v", j, l, ma.evs)
	}
}

// A node whose lease stays missing for reapAfter TTLs has its keys and ID
// removed from Redis; a live node's are left alone.
func TestDeadNodeReaped(t *testing.T) {
	old := reapAfter
	t.Cleanup(func() { reapAfter = old }) // after the nodes' Close (cleanups run last first)
	reapAfter = 2
	r := startRedis(t)
	rc := r.client(t)
	ctx := context.Background()
	a, _ := startNode(t, testConfig(r, "a"))
	b, _ := startNode(t, testConfig(r, "b"))
	c, mc := startNode(t, testConfig(r, "c"))
	join(a, "ann", "s", nil)
	join(b, "bob", "s", nil)
	sameView(t, 3*time.Second, []string{"ann/s", "bob/s"}, []*Node{c}, []*model{mc})
	b.abandon()
	kb, ka := nodeKeys(DefaultPrefix, "b"), nodeKeys(DefaultPrefix, "a")
	took := waitFor(t, time.Duration(reapAfter+1)*testTTL+2*testRenew+2*time.Second, func() bool {
		return rc.Exists(ctx, kb.sess, kb.stream, kb.ctr).Val() == 0 && !rc.SIsMember(ctx, DefaultPrefix+":nodes", "b").Val()
	}, func() string { return "b's keys still in Redis" })
	t.Logf("b's keys removed %v after its crash", took)
	if rc.Exists(ctx, ka.sess, ka.lease).Val() != 2 || !rc.SIsMember(ctx, DefaultPrefix+":nodes", "a").Val() {
		t.Error("a live node's keys were removed")
	}
	sameView(t, time.Second, []string{"ann/s"}, []*Node{a, c}, []*model{newModelFrom(t, a), mc})
}

// newModelFrom is a model loaded from n's snapshot, for a view check.
func newModelFrom(t testing.TB, n *Node) *model {
	m := newModel(t, n.cfg.NodeID)
	m.load(n.Snapshot())
	return m
}

// A node closed on purpose leaves no key behind either, once reaped: its
// stream and incarnation counter go too, and the last node of a cluster to
// close is reaped by a node that starts later (docs/cluster.md: autoscaled
// nodes with fresh IDs leave no memory behind).
func TestClosedNodeReaped(t *testing.T) {
	old := reapAfter
	t.Cleanup(func() { reapAfter = old }) // after the nodes' Close (cleanups run last first)
	reapAfter = 2
	r := startRedis(t)
	rc := r.client(t)
	ctx := context.Background()
	a, _ := startNode(t, testConfig(r, "a"))
	b, mb := startNode(t, testConfig(r, "b"))
	join(a, "ann", "s", nil)
	join(b, "bob", "s", nil)
	sameView(t, 3*time.Second, []string{"ann/s", "bob/s"}, []*Node{b}, []*model{mb})
	gone := func(id string) func() bool {
		k := nodeKeys(DefaultPrefix, id)
		return func() bool {
			return rc.Exists(ctx, k.lease, k.inc, k.sess, k.stage, k.stream, k.ctr).Val() == 0 &&
				!rc.SIsMember(ctx, DefaultPrefix+":nodes", id).Val()
		}
	}
	left := func(id string) func() string {
		return func() string {
			return fmt.Sprintf("%s's keys still in Redis: %v", id, rc.Keys(ctx, "*{n:"+id+"}*").Val())
		}
	}
	bound := time.Duration(reapAfter+1)*testTTL + 2*testRenew + 2*time.Second
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, bound, gone("a"), left("a")) // reaped by b
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	startNode(t, testConfig(r, "c")) // a fresh ID, after every other node closed
	waitFor(t, bound, gone("b"), left("b"))
}
