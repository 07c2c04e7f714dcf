// Package cluster runs the Go snippets of docs/cluster.md (see
// docs/snippets_test.go) against a real redis-server.
package cluster

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/heartbeat-go/heartbeat/presence"
	"github.com/heartbeat-go/heartbeat/presence/cluster"
)

func newClusterHub(ctx context.Context, redisAddr, nodeID string, onEvent func(presence.Event)) (*presence.Hub, *cluster.Node, error) {
	node, err := cluster.New(ctx, cluster.Config{Addr: redisAddr, NodeID: nodeID})
	if err != nil {
		return nil, nil, err
	}
	hub, err := presence.NewHub(presence.HubConfig{
		Cluster: node, // Online, Snapshot, Subscribe and OnEvent now cover every node
		OnEvent: onEvent,
	})
	if err != nil {
		_ = node.Close(ctx)
		return nil, nil, err
	}
	return hub, node, nil
}

func stop(ctx context.Context, hub *presence.Hub, node *cluster.Node) {
	_ = hub.Shutdown(ctx) // this node's sessions leave, through the node
	_ = node.Close(ctx)   // its lease goes: the other nodes need not wait for the TTL
}

// redisServer starts a throwaway redis-server on a free loopback port.
func redisServer(t *testing.T) string {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis-server missing: %v", err)
		}
		t.Skip("redis-server not installed")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	cmd := exec.Command(bin, "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := fmt.Sprint("127.0.0.1:", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server not up: %v", err)
		}
		<-time.After(20 * time.Millisecond)
	}
}

// Two nodes built by the snippet: the second hears the first's hub close
// down (no session here, so no event) and the node's Close frees its ID.
func TestClusterHub(t *testing.T) {
	addr := redisServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var mu sync.Mutex
	var evs []presence.Event
	h1, n1, err := newClusterHub(ctx, addr, "node-1", func(e presence.Event) { mu.Lock(); evs = append(evs, e); mu.Unlock() })
	if err != nil {
		t.Fatal(err)
	}
	h2, n2, err := newClusterHub(ctx, addr, "node-2", nil)
	if err != nil {
		t.Fatal(err)
	}
	if h1.Online("ann") || len(h2.Snapshot().Users) != 0 {
		t.Fatal("someone online in an empty cluster")
	}
	stop(ctx, h2, n2)
	// node-2's ID is free again at once after Close.
	h3, n3, err := newClusterHub(ctx, addr, "node-2", nil)
	if err != nil {
		t.Fatalf("node-2 again after Close: %v", err)
	}
	stop(ctx, h3, n3)
	stop(ctx, h1, n1)
	if len(evs) != 0 {
		t.Errorf("events in an empty cluster: %v", evs)
	}
}
