package nbiohandler_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heartbeat-go/heartbeat/policy"
	"github.com/heartbeat-go/heartbeat/presence"
	"github.com/heartbeat-go/heartbeat/presence/nbiohandler"
	"github.com/heartbeat-go/heartbeat/transport/nbiows"
)

// TestServerPingsWhileClientPings: policy.Every pings "every Period
// whatever else arrives", yet a hub whose client pings at the same period
// sends almost none of its own pings (1 in 4 s seen, of 16). The Machine
// emits the due SendPing in the step of the client's ping, after the
// SendPong; the shard drops it because the pong's write is in flight
// (c.writing), while the Machine counts it sent (seq, lastPing,
// unanswered), so the next ping is due one period later, when the
// client's next ping arrives again: the two lock in phase. The server's
// pings carry its reconnect-window and timeout advice, which such a client
// then never receives; a dropped probe also counts as unanswered.
func TestServerPingsWhileClientPings(t *testing.T) {
	const period = 200 * time.Millisecond
	hub, err := presence.NewHub(presence.HubConfig{
		ResumeWindow: time.Second,
		Policies: func() policy.Set {
			return policy.Set{Detector: &policy.Fixed{SuspectAfter: 5 * time.Second, DeadAfter: 10 * time.Second}, Interval: &policy.Every{Period: period}}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := nbiows.NewServer(nbiows.ServerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	h, err := nbiohandler.New(nbiohandler.Config{
		Hub: hub, Server: srv,
		Authenticate: func(req *http.Request) (presence.Identity, error) {
			if u := req.URL.Query().Get("user"); u != "" {
				return presence.Identity{User: u, Session: "s"}, nil
			}
			return presence.Identity{}, errors.New("no user")
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(h)
	done := make(chan struct{})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		_ = hub.Shutdown(ctx)
		_ = srv.Close()
		hs.Close()
		<-done
	})
	ws, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(hs.URL, "http")+"?user=ann", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	t.Cleanup(func() { _ = ws.Close() })
	var pings atomic.Int64
	ws.SetPingHandler(func(s string) error {
		pings.Add(1)
		return ws.WriteControl(websocket.PongMessage, []byte(s), time.Now().Add(time.Second))
	})
	go func() {
		defer close(done)
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	}()
	// The client pings at the server's period plus its own timer's
	// latency (a millisecond or two), as a client of this library with the
	// same Every does: each of its pings arrives just after the server's
	// is due, before the timer wheel's slot fires it.
	const rounds = 20
	wake := time.NewTimer(period)
	defer wake.Stop()
	for range rounds {
		<-wake.C
		wake.Reset(period + 2*time.Millisecond)
		if err := ws.WriteControl(websocket.PingMessage, []byte("c"), time.Now().Add(time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("server pings: %d in %d periods", pings.Load(), rounds)
	if got := pings.Load(); got < rounds/2 {
		t.Fatalf("the server pinged %d times in %d periods of %v while the client pinged; Every should ping about every period", got, rounds, period)
	}
}
