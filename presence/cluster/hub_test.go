package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/presence"
	"github.com/heartbeat-go/heartbeat/transport"
	"github.com/heartbeat-go/heartbeat/transport/mem"
)

type memConn struct{ *mem.Conn }

func (c memConn) Bind(ev transport.Events) error { c.Conn.Bind(ev); return nil }

// Two hubs, each with its Node as HubConfig.Cluster: a client on one is
// online on the other, through Online, Snapshot and OnEvent; its close is
// a leave on both.
func TestHubClusterConfig(t *testing.T) {
	r := startRedis(t)
	hub := func(id string) (*presence.Hub, *model) {
		n, _ := startNode(t, testConfig(r, id))
		m := newModel(t, id)
		h, err := presence.NewHub(presence.HubConfig{Cluster: n, OnEvent: m.apply})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = h.Shutdown(ctx)
		})
		return h, m
	}
	ha, ma := hub("a")
	hb, mb := hub("b")
	d, err := fsm.Run(context.Background(), fsm.DriverConfig{
		Dialer: transport.DialerFunc(func(ctx context.Context, ev transport.Events) (transport.Conn, error) {
			c, s := mem.Pipe(nil)
			c.Bind(ev)
			if _, err := ha.Watch(memConn{s}, ha.NewConnID(), presence.Identity{User: "ann", Session: "tab"}); err != nil {
				return nil, err
			}
			return c, nil
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() bool { return hb.Online("ann") && ha.Online("ann") },
		func() string { return fmt.Sprint(hb.Snapshot(), ha.Snapshot()) })
	if s := snapKeys(hb.Snapshot()); fmt.Sprint(s) != "[ann/tab]" {
		t.Fatalf("hub b's snapshot %v", s)
	}
	// HubStats counts the hub's own (its doc says so).
	if sa, sb := ha.Stats(), hb.Stats(); sa.Users != 1 || sa.Sessions != 1 || sb.Users != 0 || sb.Sessions != 0 || sb.Events != 0 {
		t.Errorf("hub stats a %+v, b %+v: want a's own user and session, none on b", sa, sb)
	}
	_ = d.Close() // a clean close: the session leaves at once
	waitFor(t, 10*time.Second, func() bool { return !hb.Online("ann") && !ha.Online("ann") },
		func() string { return fmt.Sprint(hb.Snapshot()) })
	for _, m := range []*model{ma, mb} {
		waitFor(t, 5*time.Second, func() bool { return m.count(presence.UserLeft, 0) == 1 }, func() string { return fmt.Sprint(m.evs) })
		m.check()
		if j := m.count(presence.UserJoined, 0); j != 1 {
			t.Errorf("%s: %d user joins", m.name, j)
		}
	}
}

// Hub.Shutdown waits until every leave is delivered (docs/presence.md);
// with HubConfig.Cluster set, OnEvent is the cluster's, so the hub's own
// leaves must have reached it through the node when Shutdown returns.
func TestHubShutdownDeliversLeavesThroughCluster(t *testing.T) {
	r := startRedis(t)
	const users = 20
	for round := range 10 {
		n, _ := startNode(t, testConfig(r, fmt.Sprintf("n%d", round)))
		m := newModel(t, n.cfg.NodeID)
		h, err := presence.NewHub(presence.HubConfig{Cluster: n, OnEvent: m.apply})
		if err != nil {
			t.Fatal(err)
		}
		for i := range users {
			d, err := fsm.Run(context.Background(), fsm.DriverConfig{
				Dialer: transport.DialerFunc(func(ctx context.Context, ev transport.Events) (transport.Conn, error) {
					c, s := mem.Pipe(nil)
					c.Bind(ev)
					if _, err := h.Watch(memConn{s}, h.NewConnID(), presence.Identity{User: fmt.Sprint("u", i), Session: "tab"}); err != nil {
						_ = c.Close(err) // a redial after the shutdown
						return nil, err
					}
					return c, nil
				}),
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = d.Close() })
		}
		waitFor(t, 10*time.Second, func() bool { return m.count(presence.UserJoined, 0) == users },
			func() string { return fmt.Sprint(m.evs) })
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = h.Shutdown(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if l := m.count(presence.UserLeft, 0); l != users {
			t.Fatalf("round %d: Shutdown returned with %d of %d leaves delivered to OnEvent", round, l, users)
		}
		m.check()
	}
}
