package cluster

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heartbeat-go/heartbeat/presence"
	"github.com/redis/go-redis/v9"
)

var (
	benchSessions = flag.Int("cluster.sessions", 100_000, "sessions in BenchmarkCluster, over 3 nodes")
	benchRate     = flag.Int("cluster.rate", 2000, "joins+leaves per second in BenchmarkCluster")
	benchChurn    = flag.Duration("cluster.churn", 5*time.Second, "how long BenchmarkCluster churns")
)

// sessionName is a 36-character ID, as long as a client UUID, so that
// both layouts below store the same strings.
func sessionName(i int) string {
	return fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i)
}

// BenchmarkCluster: 100,000 sessions over 3 nodes with the default lease,
// then 2,000 joins+leaves per second. Reported: propagation delay from a
// node's Local to the event on the other nodes (p50, p99), Redis memory per
// session (INFO memory used_memory, before and after) beside a
// Centrifugo-style layout of the same sessions in the same Redis (a sorted
// set of expiry times plus a hash of client info per channel), and Redis
// commands per second at rest and for liveness.
//
//	go test -run '^$' -bench BenchmarkCluster -benchtime 1x ./presence/cluster
func BenchmarkCluster(b *testing.B) {
	r := startRedis(b)
	rc := r.client(b)
	ctx := context.Background()
	for range b.N {
		rc.FlushAll(ctx)
		benchCluster(b, r, rc)
	}
}

func usedMemory(b *testing.B, rc *redis.Client) int64 {
	s, err := rc.Info(context.Background(), "memory").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(s, "\r\n") {
		if v, ok := strings.CutPrefix(l, "used_memory:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	b.Fatal("no used_memory in INFO memory")
	return 0
}

func commands(b *testing.B, rc *redis.Client) int64 {
	s, _ := rc.Info(context.Background(), "stats").Result()
	for _, l := range strings.Split(s, "\r\n") {
		if v, ok := strings.CutPrefix(l, "total_commands_processed:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	b.Fatal("no total_commands_processed in INFO stats")
	return 0
}

func benchCluster(b *testing.B, r *redisServer, rc *redis.Client) {
	ctx := context.Background()
	const nodes = 3
	mem0 := usedMemory(b, rc)
	type origin struct {
		node int
		at   time.Time
	}
	var mu sync.Mutex
	sent := map[string]origin{} // kind/user/session → who and when
	var lat []time.Duration
	ns := make([]*Node, nodes)
	for i := range ns {
		n, err := New(ctx, Config{Addr: r.addr(), NodeID: fmt.Sprint("n", i)})
		if err != nil {
			b.Fatal(err)
		}
		defer n.Close(ctx)
		ns[i] = n
		self := i
		n.Subscribe(func(e presence.Event) {
			if e.Kind != presence.SessionJoined && e.Kind != presence.SessionLeft {
				return
			}
			now := time.Now()
			mu.Lock()
			if o, ok := sent[fmt.Sprint(e.Kind, "/", e.User, "/", e.Session)]; ok && o.node != self {
				lat = append(lat, now.Sub(o.at))
			}
			mu.Unlock()
		})
	}
	total := *benchSessions
	per := make([][]sessKey, nodes) // each node's sessions
	for i := range total {
		k := sessKey{"u" + strconv.Itoa(i%(total/2+1)), sessionName(i)}
		per[i%nodes] = append(per[i%nodes], k)
		ns[i%nodes].Local(presence.Event{Kind: presence.SessionJoined, User: k.user, Session: k.session})
	}
	waitFor(b, 2*time.Minute, func() bool {
		for _, n := range ns {
			n.mu.Lock()
			c := len(n.view.sess)
			n.mu.Unlock()
			if c != total {
				return false
			}
		}
		return true
	}, func() string { return "the preload did not reach every node" })
	mem1 := usedMemory(b, rc)
	var hashBytes, streamBytes int64
	for i := range ns {
		k := nodeKeys(DefaultPrefix, fmt.Sprint("n", i))
		hashBytes += rc.MemoryUsage(ctx, k.sess, 0).Val()
		streamBytes += rc.MemoryUsage(ctx, k.stream, 0).Val()
	}

	// At rest: every command Redis serves is liveness.
	c0, t0 := commands(b, rc), time.Now()
	live0 := livenessCalls(ns)
	waitFor(b, time.Minute, func() bool { return time.Since(t0) >= 5*time.Second }, func() string { return "" })
	idle := float64(commands(b, rc)-c0-1) / time.Since(t0).Seconds()
	livePerSec := float64(livenessCalls(ns)-live0) / time.Since(t0).Seconds()

	// Churn: each step, a node lets one of its sessions go and takes a
	// new one.
	rng := rand.New(rand.NewPCG(1, 2))
	next := total
	step := 10 * time.Millisecond
	perStep := *benchRate * int(step) / int(time.Second) / 2 // pairs
	tick := time.NewTicker(step)
	start := time.Now()
	ops := 0
	for time.Since(start) < *benchChurn {
		<-tick.C
		for range perStep {
			i := rng.IntN(nodes)
			j := rng.IntN(len(per[i]))
			old := per[i][j]
			nk := sessKey{"u" + strconv.Itoa(next%(total/2+1)), sessionName(next)}
			next++
			per[i][j] = nk
			now := time.Now()
			mu.Lock()
			sent[fmt.Sprint(presence.SessionLeft, "/", old.user, "/", old.session)] = origin{i, now}
			sent[fmt.Sprint(presence.SessionJoined, "/", nk.user, "/", nk.session)] = origin{i, now}
			mu.Unlock()
			ns[i].Local(presence.Event{Kind: presence.SessionLeft, User: old.user, Session: old.session, Reason: presence.LeaveClosed})
			ns[i].Local(presence.Event{Kind: presence.SessionJoined, User: nk.user, Session: nk.session})
			ops += 2
		}
	}
	tick.Stop()
	churn := time.Since(start)
	want := ops * (nodes - 1)
	waitFor(b, time.Minute, func() bool { mu.Lock(); defer mu.Unlock(); return len(lat) >= want },
		func() string { return fmt.Sprintf("%d of %d remote events", len(lat), want) })

	// The Centrifugo-style layout of the same sessions, same Redis.
	mem2 := usedMemory(b, rc)
	exp := time.Now().Add(time.Minute).Unix()
	for i := 0; i < total; i += 1000 {
		p := rc.Pipeline()
		for j := i; j < min(i+1000, total); j++ {
			id := sessionName(j)
			user := "u" + strconv.Itoa(j%(total/2+1))
			p.ZAdd(ctx, "centrifugo.presence.expire.chat", redis.Z{Score: float64(exp), Member: id})
			// ClientInfo, protobuf-encoded: user (1), client (2).
			p.HSet(ctx, "centrifugo.presence.data.chat", id, "\x0a"+string(rune(len(user)))+user+"\x12"+string(rune(len(id)))+id)
		}
		if _, err := p.Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
	mem3 := usedMemory(b, rc)

	mu.Lock()
	slices.Sort(lat)
	q := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) / float64(time.Millisecond)
	}
	ours := float64(mem1-mem0) / float64(total)
	cf := float64(mem3-mem2) / float64(total)
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64(ops)/churn.Seconds(), "changes/s")
	b.ReportMetric(ours, "B/session")
	b.ReportMetric(float64(hashBytes)/float64(total), "hash-B/session")
	b.ReportMetric(float64(streamBytes)/float64(total), "stream-B/session")
	b.ReportMetric(cf, "centrifugo-B/session")
	b.ReportMetric(ours/cf, "mem-ratio")
	b.ReportMetric(idle, "idle-cmds/s")
	b.ReportMetric(livePerSec, "liveness-cmds/s")
	b.Logf("%d sessions, %d nodes: %d remote events, p50 %.1f ms p99 %.1f ms max %.1f ms; memory %.0f B/session (hashes %.0f, streams %.0f) vs Centrifugo-style %.0f B/session (%.2f×); at rest %.1f commands/s, liveness %.1f/s",
		total, nodes, len(lat), q(0.5), q(0.99), q(1), ours, float64(hashBytes)/float64(total), float64(streamBytes)/float64(total), cf, ours/cf, idle, livePerSec)
	mu.Unlock()
}

func livenessCalls(ns []*Node) uint64 {
	var s uint64
	for _, n := range ns {
		s += n.Stats().LivenessCalls
	}
	return s
}
