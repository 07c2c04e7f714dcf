package cluster

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// After every node has closed, Redis holds nothing of the cluster but the
// incarnations, each expiring within 10 lease TTLs; a node that closes
// while another runs takes its lease, sessions, stream and ID with it.
func TestCloseLeavesRedisClean(t *testing.T) {
	r := startRedis(t)
	rc := r.client(t)
	ctx := context.Background()
	a, _ := startNode(t, testConfig(r, "a"))
	b, mb := startNode(t, testConfig(r, "b"))
	join(a, "ann", "s", nil)
	join(b, "bob", "s", nil)
	sameView(t, 3*time.Second, []string{"ann/s", "bob/s"}, []*Node{b}, []*model{mb})

	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	ka := nodeKeys(DefaultPrefix, "a")
	for _, k := range []string{ka.lease, ka.sess, ka.ctr, ka.stream} {
		if n := rc.Exists(ctx, k).Val(); n != 0 {
			t.Errorf("%s still in Redis after a's Close", k)
		}
	}
	if rc.SIsMember(ctx, DefaultPrefix+":nodes", "a").Val() {
		t.Error("a still in the node list after its Close")
	}
	waitFor(t, 3*time.Second, func() bool { return slices.Equal(mb.online(), []string{"bob/s"}) }, func() string { return fmt.Sprint(mb.online()) })

	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	keys, err := rc.Keys(ctx, DefaultPrefix+":*").Result()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	want := []string{ka.inc, nodeKeys(DefaultPrefix, "b").inc}
	slices.Sort(want)
	if !slices.Equal(keys, want) {
		t.Fatalf("keys left after every node closed: %v, want only the incarnations %v", keys, want)
	}
	for _, k := range keys {
		if ttl := rc.PTTL(ctx, k).Val(); ttl <= 0 || ttl > time.Duration(reapAfter)*testTTL {
			t.Errorf("%s expires in %v, want within %v", k, ttl, time.Duration(reapAfter)*testTTL)
		}
	}
}

// A node's stream drops the entries older than 10 lease TTLs by Redis's
// clock, whatever its length, so a quiet cluster keeps no old session IDs.
func TestStreamTrimmedByAge(t *testing.T) {
	r := startRedis(t)
	rc := r.client(t)
	ctx := context.Background()
	k := nodeKeys(DefaultPrefix, "a")
	// 300 entries from long ago (IDs are milliseconds since 1970): three
	// of Redis's stream nodes, which approximate trimming removes whole.
	for i := 1; i <= 300; i++ {
		if err := rc.XAdd(ctx, &redis.XAddArgs{Stream: k.stream, ID: fmt.Sprintf("%d-0", i), Values: []any{"i", "1", "n", "0"}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	a, _ := startNode(t, testConfig(r, "a"))
	join(a, "ann", "s", nil)
	waitFor(t, 3*time.Second, func() bool { return rc.HLen(ctx, k.sess).Val() == 1 }, func() string { return "ann/s not written" })
	old, err := rc.XRange(ctx, k.stream, "-", fmt.Sprint(time.Now().Add(-time.Duration(reapAfter)*testTTL).UnixMilli())).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(old) >= 100 {
		t.Errorf("%d entries older than %d lease TTLs left in the stream, want fewer than one stream node (100)", len(old), reapAfter)
	}
}
