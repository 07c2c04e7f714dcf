package nbiohandler_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/lesismal/nbio/logging"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/goleak"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/policy"
	"github.com/heartbeat-go/heartbeat/presence"
	"github.com/heartbeat-go/heartbeat/presence/nbiohandler"
	"github.com/heartbeat-go/heartbeat/presence/promhub"
	"github.com/heartbeat-go/heartbeat/transport/nbiows"
)

func TestMain(m *testing.M) {
	logging.SetLevel(logging.LevelNone)
	goleak.VerifyTestMain(m, goleak.IgnoreCurrent()) // nbio's default engine starts its pools at init
}

const wait = 10 * time.Second

// rig is a hub, an nbiows server and the handler on a loopback HTTP
// server, with metrics.
type rig struct {
	hub     *presence.Hub
	srv     *nbiows.Server
	m       *promhub.Metrics
	url     string
	metrics string
	evs     chan presence.Event
	clients sync.WaitGroup
	rtts    atomic.Int64 // round trips measured
	bad     atomic.Int64 // suspect or dead verdicts on users but "stuck"
}

func newRig(t *testing.T, every, suspect, dead time.Duration, onConnect func(*nbiohandler.Client)) *rig {
	t.Helper()
	r := &rig{m: promhub.New(promhub.Config{}), evs: make(chan presence.Event, 1<<16)}
	var err error
	r.hub, err = presence.NewHub(presence.HubConfig{
		Observe: func(c presence.ConnChange) {
			if (c.To == fsm.Suspect || c.To == fsm.Dead) && c.User != "stuck" {
				r.bad.Add(1)
			}
			r.m.Observe(c)
		},
		ResumeWindow: time.Second,
		OnEvent:      func(e presence.Event) { r.evs <- e },
		Policies: func() policy.Set {
			return policy.Set{Detector: &policy.Fixed{SuspectAfter: suspect, DeadAfter: dead}, Interval: &policy.Idle{Every: every}}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	r.srv, err = nbiows.NewServer(nbiows.ServerConfig{OnRTT: func(d time.Duration) {
		r.rtts.Add(1)
		r.m.ObserveRTT(d)
	}})
	if err != nil {
		t.Fatal(err)
	}
	r.m.Hub = r.hub
	r.m.Queues = func() promhub.QueueStats {
		st := r.srv.Stats()
		return promhub.QueueStats{Queued: st.Queued, Overflows: st.Overflows}
	}
	h, err := nbiohandler.New(nbiohandler.Config{
		Hub: r.hub, Server: r.srv,
		Authenticate: func(req *http.Request) (presence.Identity, error) {
			u := req.URL.Query().Get("user")
			if u == "" {
				return presence.Identity{}, errors.New("no user")
			}
			return presence.Identity{User: u, Session: "s"}, nil
		},
		OnConnect: onConnect,
		OnRefused: func(_ *http.Request, status int) { r.m.Refused(status) },
	})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(r.m)
	mux := http.NewServeMux()
	mux.Handle("/ws", h)
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	hs := httptest.NewServer(mux)
	r.url = "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"
	r.metrics = hs.URL + "/metrics"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := r.hub.Shutdown(ctx); err != nil {
			t.Errorf("hub shutdown: %v", err)
		}
		_ = r.srv.Close()
		hs.Close()
		r.clients.Wait()
	})
	return r
}

// dial connects a gorilla client as user; if answer, a goroutine reads
// (so gorilla answers the pings) until the connection ends.
func (r *rig) dial(t *testing.T, user string, answer bool) *websocket.Conn {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(r.url+"?user="+user, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", user, err)
	}
	_ = resp.Body.Close()
	t.Cleanup(func() { _ = ws.Close() })
	if answer {
		r.clients.Go(func() {
			for {
				if _, _, err := ws.ReadMessage(); err != nil {
					return
				}
			}
		})
	}
	return ws
}

// waitEvent waits for the event of kind for user.
func (r *rig) waitEvent(t *testing.T, kind presence.EventKind, user string) {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case e := <-r.evs:
			if e.Kind == kind && e.User == user {
				return
			}
		case <-deadline:
			t.Fatalf("no %v for %s within %v", kind, user, wait)
		}
	}
}

func (r *rig) scrape(t *testing.T) string {
	t.Helper()
	resp, err := http.Get(r.metrics)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestMetricsAfterScriptedRun: two users answer, one stops reading and is
// found dead, one request is refused, one user drops and redials; then
// /metrics, scraped over HTTP, says exactly that.
func TestMetricsAfterScriptedRun(t *testing.T) {
	r := newRig(t, 100*time.Millisecond, 300*time.Millisecond, 600*time.Millisecond, nil)
	ann := r.dial(t, "ann", true)
	r.waitEvent(t, presence.UserJoined, "ann")
	r.dial(t, "bob", true)
	r.waitEvent(t, presence.UserJoined, "bob")
	r.dial(t, "cat", false) // never reads: no pong
	r.waitEvent(t, presence.UserJoined, "cat")
	if _, resp, err := websocket.DefaultDialer.Dial(r.url, nil); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a request without a user: %v, want 401", err)
	}
	// A plain GET of the WebSocket path is refused by the upgrade: 400.
	if resp, err := http.Get("http" + strings.TrimPrefix(r.url, "ws") + "?user=dan"); err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("a request that is no upgrade: %v %v, want 400", resp, err)
	} else {
		_ = resp.Body.Close()
	}
	_ = ann.UnderlyingConn().Close() // ann's link drops ...
	r.dial(t, "ann", true)           // ... and she redials within the resume window
	r.waitEvent(t, presence.UserLeft, "cat")
	deadline := time.After(wait)
	var body string
	for {
		body = r.scrape(t)
		if r.hub.Stats().Conns == 2 && strings.Contains(body, `heartbeat_verdicts_total{reason="peer closed",verdict="dead"} 1`) {
			break
		}
		select {
		case <-r.evs:
		case <-time.After(20 * time.Millisecond): // polls the hub; no event marks a connection's end
		case <-deadline:
			t.Fatalf("ann's old connection never ended: %+v\n%s", r.hub.Stats(), body)
		}
	}
	for _, want := range []string{
		`heartbeat_connections{state="alive"} 2`,
		`heartbeat_connections{state="suspect"} 0`,
		`heartbeat_connections{state="connecting"} 0`,
		`heartbeat_online_users 2`,
		`heartbeat_online_sessions 2`,
		`heartbeat_verdicts_total{reason="silence",verdict="suspect"} 1`,
		`heartbeat_verdicts_total{reason="unanswered",verdict="dead"} 1`,
		`heartbeat_verdicts_total{reason="peer closed",verdict="dead"} 1`,
		`heartbeat_suspect_to_dead_seconds_count 1`,
		`heartbeat_redials_total 1`,
		`heartbeat_refused_dials_total{status="401"} 1`,
		`heartbeat_refused_dials_total{status="400"} 1`,
		`heartbeat_write_queue_overflows_total 0`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	for _, name := range []string{"heartbeat_rtt_seconds_count", "heartbeat_timer_lateness_seconds_count", "heartbeat_presence_events_total"} {
		if !strings.Contains(body, name+" ") || strings.Contains(body, name+" 0\n") {
			t.Errorf("/metrics: %s missing or zero", name)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", body)
	}
}

// rawDial opens a WebSocket by hand and keeps only the socket: a client
// with no goroutine, so the goroutines counted are the server's.
func rawDial(t *testing.T, url, user string) net.Conn {
	t.Helper()
	d := websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}
	ws, resp, err := d.Dial(url+"?user="+user, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	_ = resp.Body.Close()
	c := ws.UnderlyingConn()
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestNoGoroutinePerConnection: 400 watched connections add fewer than 0.1
// goroutines each (gorilla's adapter adds one per connection).
func TestNoGoroutinePerConnection(t *testing.T) {
	const n = 400
	r := newRig(t, time.Minute, 2*time.Minute, 3*time.Minute, nil)
	settle := func(atMost int) int {
		deadline := time.Now().Add(wait)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			g := runtime.NumGoroutine()
			if g <= atMost || time.Now().After(deadline) {
				return g
			}
			<-tick.C
		}
	}
	r.dial(t, "warm", false) // the pollers, the workers' first run
	r.waitEvent(t, presence.UserJoined, "warm")
	before := settle(0)
	for i := range n {
		rawDial(t, r.url, "u"+string(rune('a'+i%26))+string(rune('a'+i/26)))
	}
	deadline := time.After(wait)
	for r.hub.Stats().Conns < n+1 {
		select {
		case <-r.evs:
		case <-deadline:
			t.Fatalf("%d of %d connections watched", r.hub.Stats().Conns, n+1)
		}
	}
	after := settle(before + n/10)
	per := float64(after-before) / n
	t.Logf("%d goroutines before, %d after %d connections: %.3f per connection", before, after, n, per)
	if per > 0.1 {
		t.Errorf("%.3f goroutines per connection, bar 0.1", per)
	}
}

// TestStuckPeerDelaysNoOther: among 1,000 connections (250 under the race
// detector), one peer stops reading while the server streams to it. Its
// write queue fills and it is closed (1008); the others answer at least
// three pings each meanwhile and not one of them is suspected.
func TestStuckPeerDelaysNoOther(t *testing.T) {
	n := 1000
	if raceEnabled {
		n = 250
	}
	var stuck atomic.Pointer[nbiohandler.Client]
	overflowed := make(chan error, 1)
	var writers sync.WaitGroup
	r := newRig(t, 300*time.Millisecond, 2*time.Second, 4*time.Second, func(c *nbiohandler.Client) {
		if c.Identity.User != "stuck" {
			return
		}
		stuck.Store(c)
		writers.Go(func() { // a broadcast the peer never reads
			msg := make([]byte, 1024)
			for range 1 << 16 {
				if err := c.Write(context.Background(), nbiows.BinaryMessage, msg); err != nil {
					overflowed <- err
					return
				}
			}
			overflowed <- errors.New("64 MiB written to a peer that does not read")
		})
	})
	t.Cleanup(writers.Wait)
	r.dial(t, "stuck", false)
	for i := range n - 1 {
		r.dial(t, fmt.Sprint("u", i), true)
	}
	select {
	case err := <-overflowed:
		if !errors.Is(err, nbiows.ErrWriteQueueFull) {
			t.Fatalf("the stuck peer's writes ended with %v, want ErrWriteQueueFull", err)
		}
	case <-time.After(wait):
		t.Fatal("the stuck peer's write queue never filled")
	}
	from := r.rtts.Load()
	deadline := time.NewTimer(3 * wait)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for r.rtts.Load()-from < int64(3*(n-1)) {
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("only %d round trips after the overflow, want %d", r.rtts.Load()-from, 3*(n-1))
		}
	}
	st := r.hub.Stats()
	t.Logf("%d connections, stats %+v, overflows %d", n, st, r.srv.Stats().Overflows)
	if b := r.bad.Load(); b != 0 {
		t.Errorf("%d suspect or dead verdicts on healthy connections", b)
	}
	if st.Conns != n-1 {
		t.Errorf("%d connections watched, want the %d healthy ones", st.Conns, n-1)
	}
}

// A user over the hub's MaxIDLen is refused with 400 before the upgrade,
// as presence.Handler does, and reported to OnRefused.
func TestIdentityOverLimitRefused(t *testing.T) {
	r := newRig(t, time.Second, 2*time.Second, 3*time.Second, nil)
	long := strings.Repeat("u", presence.DefaultMaxIDLen+1)
	_, resp, err := websocket.DefaultDialer.Dial(r.url+"?user="+long, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("dial as a user of %d bytes: %v, %v, want 400", len(long), err, resp)
	}
	if m := r.scrape(t); !strings.Contains(m, `status="400"} 1`) {
		t.Errorf("the refusal is not in the metrics:\n%s", m)
	}
	if r.hub.Online(long) {
		t.Error("the refused user is online")
	}
}
