package cluster

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heartbeat-go/heartbeat/presence"
	"github.com/redis/go-redis/v9"
)

// startRedisCluster starts three redis-server masters in cluster mode and
// joins them (redis-cli --cluster create); it returns their addresses.
func startRedisCluster(t *testing.T) []string {
	bin := needRedis(t)
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis-cli is missing: %v", err)
		}
		t.Skip("redis-cli not installed")
	}
	var addrs []string
	for i := range 3 {
		// The cluster bus defaults to port + 10000, which may not exist:
		// it gets a free port of its own.
		port, bus := freePort(t), freePort(t)
		dir := t.TempDir()
		cmd := exec.Command(bin, "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--dir", dir, "--cluster-enabled", "yes", "--cluster-port", fmt.Sprint(bus), "--cluster-config-file", filepath.Join(dir, "nodes.conf"),
			"--logfile", filepath.Join(dir, "redis.log"))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
		waitFor(t, 10*time.Second, func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			return c.Ping(ctx).Err() == nil
		}, func() string { return fmt.Sprintf("redis-server %d not up", i) })
		_ = c.Close()
		addrs = append(addrs, addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, cli, append([]string{"--cluster", "create"}, append(addrs, "--cluster-yes")...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, a := range addrs {
		c := redis.NewClient(&redis.Options{Addr: a})
		waitFor(t, 20*time.Second, func() bool {
			s, _ := c.ClusterInfo(context.Background()).Result()
			return strings.Contains(s, "cluster_state:ok")
		}, func() string { return a + ": cluster not ok" })
		_ = c.Close()
	}
	return addrs
}

// The same protocol on a three-master Redis Cluster: each node's scripts
// touch one slot (a CROSSSLOT error would fail them), changes propagate,
// and a crashed node's sessions leave. The keys spread over the masters:
// {n:a} is slot 5811 and {n:b} 9936 (second master), {n:c} 14065 (third),
// hb:nodes 4061 (first).
func TestRedisCluster(t *testing.T) {
	addrs := startRedisCluster(t)
	node := func(id string) (*Node, *model) {
		c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, MaxRetries: -1})
		cfg := Config{Client: c, NodeID: id, LeaseTTL: testTTL, OnError: func(err error) { t.Errorf("%s: %v", id, err) }}
		n, m := startNode(t, cfg)
		t.Cleanup(func() { _ = c.Close() })
		return n, m
	}
	a, ma := node("a")
	b, mb := node("b")
	c, mc := node("c")
	for i := range 10 {
		join(a, fmt.Sprint("u", i), "a", presence.Meta{"n": fmt.Sprint(i)})
		join(b, fmt.Sprint("u", i), "b", nil)
		join(c, "w", fmt.Sprint(i), nil)
	}
	var all, noA []string
	for i := range 10 {
		all = append(all, fmt.Sprintf("u%d/a", i), fmt.Sprintf("u%d/b", i), fmt.Sprintf("w/%d", i))
		noA = append(noA, fmt.Sprintf("u%d/b", i), fmt.Sprintf("w/%d", i))
	}
	sameView(t, 5*time.Second, all, []*Node{a, b, c}, []*model{ma, mb, mc})
	a.abandon()
	took := sameView(t, testTTL+testRenew+2*time.Second, noA, []*Node{b, c}, []*model{mb, mc})
	t.Logf("on Redis Cluster: a's sessions gone %v after its crash", took)
	mb.check()
	mc.check()
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
