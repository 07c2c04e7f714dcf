package cluster

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

var crashes = flag.Int("cluster.crashes", 1, "SIGKILLs in TestCrashLeaveLatency (docs/cluster.md: go test -run TestCrashLeaveLatency ./presence/cluster -args -cluster.crashes=50)")

// TestCrashLeaveLatency measures, with the default lease, how long after a
// node process is SIGKILLed the other nodes emit the leave of each of its
// sessions; every leave must come within LeaseTTL + Renew + 1 s. The killed
// node comes back under its ID with new sessions, and the next kill takes
// another node.
func TestCrashLeaveLatency(t *testing.T) {
	r := startRedis(t)
	ttl := DefaultLeaseTTL
	renew := ttl / 3
	bound := ttl + renew + time.Second
	rc := r.client(t)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	ps := make([]*proc, 3)
	for i := range ps {
		ps[i] = startProc(t, r.addr(), fmt.Sprint("n", i), ttl)
		for j := range 100 {
			ps[i].join(fmt.Sprintf("u%d", j), fmt.Sprintf("n%d.0", i))
		}
	}
	converge(t, 5*time.Second, truthOf(ps...), ps...)
	var lat []time.Duration
	for c := range *crashes {
		v := c % len(ps)
		var obs []*proc
		marks := map[*proc]int{}
		for i, p := range ps {
			if i != v {
				obs = append(obs, p)
				marks[p] = p.events()
			}
		}
		// Kill at a random phase of the victim's renewal: when its lease
		// has run down to a random point of the last period.
		left := ttl - time.Duration(rng.Int64N(int64(renew)))
		waitFor(t, 2*renew, func() bool {
			d, err := rc.PTTL(context.Background(), nodeKeys(DefaultPrefix, ps[v].id).lease).Result()
			return err == nil && d > 0 && d <= left
		}, func() string { return "the victim's lease did not run down" })
		killed := time.Now()
		ps[v].kill()
		converge(t, bound+2*time.Second, truthOf(obs...), obs...)
		for _, p := range obs {
			for _, at := range p.leaveTimes(marks[p], ps[v].truth) {
				lat = append(lat, at.Sub(killed))
			}
		}
		ps[v] = startProc(t, r.addr(), fmt.Sprint("n", v), ttl)
		for j := range 100 {
			ps[v].join(fmt.Sprintf("u%d", j), fmt.Sprintf("n%d.%d", v, c+1))
		}
		converge(t, 5*time.Second, truthOf(ps...), ps...)
	}
	slices.Sort(lat)
	q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	t.Logf("%d crashes, %d leaves: p50 %v p99 %v max %v (lease %v, renew %v)", *crashes, len(lat),
		q(0.50).Round(time.Millisecond), q(0.99).Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond), ttl, renew)
	if max := lat[len(lat)-1]; max > bound {
		t.Errorf("a leave came %v after the kill, bound %v", max, bound)
	}
}
