package cluster

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heartbeat-go/heartbeat/presence"
	"github.com/redis/go-redis/v9"
)

// Test lease: short, so fault tests finish in seconds.
const (
	testTTL   = time.Second
	testRenew = testTTL / 3
)

func testConfig(r *redisServer, id string) Config {
	return Config{Addr: r.addr(), NodeID: id, LeaseTTL: testTTL}
}

// startNode starts a node and records its events; Cleanup closes it.
func startNode(t testing.TB, cfg Config) (*Node, *model) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := New(ctx, cfg)
	if err != nil {
		t.Fatalf("node %s: %v", cfg.NodeID, err)
	}
	m := newModel(t, cfg.NodeID)
	snap, _ := n.Subscribe(m.apply)
	m.load(snap)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = n.Close(ctx)
	})
	return n, m
}

// abandon stops a node as a crash would: no goodbye in Redis.
func (n *Node) abandon() {
	if n.halt() && n.own {
		_ = n.rdb.Close()
	}
}

// model replays a node's events and fails the test on any event that does
// not follow from the previous ones (a join of a session already online, a
// leave of one not online): each change is reported exactly once.
type model struct {
	t     testing.TB
	name  string
	mu    sync.Mutex
	sess  map[string]bool // user/session
	users map[string]int
	evs   []presence.Event
	times []time.Time
	bad   []string
}

func newModel(t testing.TB, name string) *model {
	return &model{t: t, name: name, sess: map[string]bool{}, users: map[string]int{}}
}

func (m *model) load(s presence.Snapshot) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, u := range s.Users {
		for _, ss := range u.Sessions {
			m.sess[u.User+"/"+ss.Session] = true
			m.users[u.User]++
		}
	}
}

func (m *model) apply(e presence.Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.evs = append(m.evs, e)
	m.times = append(m.times, time.Now())
	k := e.User + "/" + e.Session
	switch e.Kind {
	case presence.UserJoined:
		if m.users[e.User] != 0 {
			m.bad = append(m.bad, "user joined twice: "+e.String())
		}
	case presence.SessionJoined:
		if m.sess[k] {
			m.bad = append(m.bad, "session joined twice: "+e.String())
		}
		m.sess[k] = true
		m.users[e.User]++
	case presence.SessionLeft:
		if !m.sess[k] {
			m.bad = append(m.bad, "session left while offline: "+e.String())
		}
		delete(m.sess, k)
		m.users[e.User]--
	case presence.UserLeft:
		if m.users[e.User] != 0 {
			m.bad = append(m.bad, "user left with sessions online: "+e.String())
		}
		delete(m.users, e.User)
	}
}

// online returns the sessions the events say are online, sorted.
func (m *model) online() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Sorted(maps.Keys(m.sess))
}

func (m *model) check() {
	m.t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.bad) > 0 {
		m.t.Errorf("%s: events out of step: %s", m.name, strings.Join(m.bad, "; "))
	}
}

// count returns how many events of kind the node has delivered since
// event index from.
func (m *model) count(kind presence.EventKind, from int) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := 0
	for _, e := range m.evs[min(from, len(m.evs)):] {
		if e.Kind == kind {
			c++
		}
	}
	return c
}

func (m *model) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.evs)
}

// snapKeys lists a snapshot's sessions, sorted.
func snapKeys(s presence.Snapshot) []string {
	var out []string
	for _, u := range s.Users {
		for _, ss := range u.Sessions {
			out = append(out, u.User+"/"+ss.Session)
		}
	}
	return out
}

// waitFor polls cond until it holds or d passes; it returns how long it
// took, and fails the test with what() on timeout.
func waitFor(t testing.TB, d time.Duration, cond func() bool, what func() string) time.Duration {
	t.Helper()
	start := time.Now()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("not within %v: %s", d, what())
		}
		<-tick.C
	}
	return time.Since(start)
}

// join and leave feed a node its own session changes, as its hub would.
func join(n *Node, user, session string, meta presence.Meta) {
	n.Local(presence.Event{Kind: presence.SessionJoined, User: user, Session: session, Meta: meta})
}

func leave(n *Node, user, session string) {
	n.Local(presence.Event{Kind: presence.SessionLeft, User: user, Session: session, Reason: presence.LeaveClosed})
}

// sameView waits until every model and snapshot equals truth.
func sameView(t testing.TB, d time.Duration, truth []string, nodes []*Node, ms []*model) time.Duration {
	t.Helper()
	slices.Sort(truth)
	return waitFor(t, d, func() bool {
		for i, n := range nodes {
			if !slices.Equal(snapKeys(n.Snapshot()), truth) || !slices.Equal(ms[i].online(), truth) {
				return false
			}
		}
		return true
	}, func() string {
		s := fmt.Sprintf("truth %v", truth)
		for i, n := range nodes {
			s += fmt.Sprintf("; %s view %v events %v", ms[i].name, snapKeys(n.Snapshot()), ms[i].online())
		}
		return s
	})
}

func strconvU(v uint64) string { return fmt.Sprint(v) }

// redisXAdd builds XADD arguments for a raw entry.
type redisXAdd struct {
	stream string
	values []any
}

func (x redisXAdd) args() *redis.XAddArgs {
	return &redis.XAddArgs{Stream: x.stream, Values: x.values}
}
