package presence_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/policy"
	"github.com/heartbeat-go/heartbeat/presence"
	"github.com/heartbeat-go/heartbeat/transport/conformance"
)

// Peers that send big messages and never read, against the handler with
// an echo whose Write has no deadline (it blocks for as long as the peer
// does not read; the docs' echo gives it 5 s): the hub's pings to them wait for no writer, so the
// quiet, healthy clients (they answer pings and send nothing, as a page
// without heartbeat.js does) are never suspected, while the stuck peers
// are found dead. 32 stuck peers are four per hub writer on two shards;
// before pings stopped waiting behind application writes, they held every
// writer for its 10 s write timeout and the quiet clients were dropped.
func TestNonReadingWritersStarveNoHeartbeat(t *testing.T) {
	const stuck, quiet = 32, 50
	const every, suspect, dead = 500 * time.Millisecond, 2 * time.Second, 4 * time.Second
	var falseSuspects, stuckDead atomic.Int64
	allDead, suspected := make(chan struct{}), make(chan struct{})
	var allDeadOnce, suspectedOnce sync.Once
	hub, err := presence.NewHub(presence.HubConfig{
		Shards: 2,
		Policies: func() policy.Set {
			return policy.Set{Detector: &policy.Fixed{SuspectAfter: suspect, DeadAfter: dead}, Interval: &policy.Idle{Every: every}}
		},
		Observe: func(c presence.ConnChange) {
			switch {
			case strings.HasPrefix(c.User, "quiet") && (c.To == fsm.Suspect || c.To == fsm.Dead):
				falseSuspects.Add(1)
				suspectedOnce.Do(func() { close(suspected) })
			case strings.HasPrefix(c.User, "stuck") && c.To == fsm.Dead:
				if stuckDead.Add(1) == stuck {
					allDeadOnce.Do(func() { close(allDead) })
				}
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	h, err := presence.NewHandler(presence.HandlerConfig{
		Hub: hub,
		Authenticate: func(r *http.Request) (presence.Identity, error) {
			return presence.Identity{User: r.URL.Query().Get("user"), Session: "s"}, nil
		},
		OnMessage: func(c *presence.Client, typ int, msg []byte) {
			_ = c.Write(context.Background(), typ, msg) // echo without a deadline: the worst case
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener = conformance.SmallBuffers(srv.Listener, 128<<10)
	srv.Start()
	defer srv.Close()
	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/?user="
	dialer := websocket.Dialer{NetDialContext: conformance.SmallBufferDial(128 << 10)}
	var wg sync.WaitGroup
	var conns []*websocket.Conn
	defer func() {
		for _, ws := range conns {
			_ = ws.Close()
		}
		wg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = hub.Shutdown(ctx)
	}()
	dial := func(user string) *websocket.Conn {
		ws, _, err := dialer.Dial(url+user, nil)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, ws)
		return ws
	}
	for i := range quiet {
		ws := dial("quiet" + string(rune('a'+i%26)) + string(rune('a'+i/26)))
		wg.Go(func() { // reads, so gorilla answers the pings; sends nothing
			for {
				if _, _, err := ws.ReadMessage(); err != nil {
					return
				}
			}
		})
	}
	msg := make([]byte, 512<<10) // under the 1 MiB read limit
	for i := range stuck {
		ws := dial("stuck" + string(rune('a'+i%26)) + string(rune('a'+i/26)))
		wg.Go(func() { // sends 8 MiB, reads nothing
			_ = ws.SetWriteDeadline(time.Now().Add(20 * time.Second))
			for range 16 {
				if ws.WriteMessage(websocket.BinaryMessage, msg) != nil {
					return
				}
			}
		})
	}
	// Long enough for each stuck peer to be found dead (its echo fills
	// the socket, its pongs stop) and for many rounds of pings to the
	// quiet ones.
	select {
	case <-allDead:
		select { // then a few more detection windows
		case <-suspected:
		case <-time.After(4 * dead):
		}
	case <-suspected:
	case <-time.After(30 * time.Second):
	}
	t.Logf("%d stuck peers: %d found dead; %d quiet clients: %d suspect or dead changes", stuck, stuckDead.Load(), quiet, falseSuspects.Load())
	if n := falseSuspects.Load(); n > 0 {
		t.Errorf("%d quiet, healthy clients were suspected or declared dead", n)
	}
	if n := stuckDead.Load(); n < stuck {
		t.Errorf("only %d of %d peers that do not read were found dead", n, stuck)
	}
}

// A hub whose Machine config sets DataRate closes a peer that floods it
// with small messages, and one that sets DataByteRate a peer that floods
// it with bytes: the peer reads close 1008 with the reason, and a peer
// that keeps to the rate stays.
func TestDataFloodClosedWith1008(t *testing.T) {
	t.Run("messages", func(t *testing.T) {
		floodClosed(t, fsm.Config{DataRate: 50, DataBurst: 50}, []byte("x"))
	})
	t.Run("bytes", func(t *testing.T) {
		floodClosed(t, fsm.Config{DataByteRate: 64 << 10, DataByteBurst: 1 << 20}, make([]byte, 64<<10))
	})
}

// floodClosed floods a hub of machine settings mc with msg and wants the
// flooder closed with 1008 while a calm peer stays online.
func floodClosed(t *testing.T, mc fsm.Config, msg []byte) {
	hub, err := presence.NewHub(presence.HubConfig{Machine: mc})
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Shutdown(context.Background())
	h, err := presence.NewHandler(presence.HandlerConfig{
		Hub: hub,
		Authenticate: func(r *http.Request) (presence.Identity, error) {
			return presence.Identity{User: r.URL.Query().Get("user"), Session: "s"}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/?user="
	flooder, _, err := websocket.DefaultDialer.Dial(url+"flooder", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer flooder.Close()
	calm, _, err := websocket.DefaultDialer.Dial(url+"calm", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer calm.Close()
	for range 40 { // within the burst
		if err := calm.WriteMessage(websocket.TextMessage, []byte("hi")); err != nil {
			t.Fatal(err)
		}
	}
	read := make(chan error, 1)
	go func() {
		for {
			if _, _, err := flooder.ReadMessage(); err != nil {
				read <- err
				return
			}
		}
	}()
	_ = flooder.SetWriteDeadline(time.Now().Add(10 * time.Second))
	sent := 0
	for ; sent < 100000; sent++ { // bounded: the server closes long before
		if flooder.WriteMessage(websocket.TextMessage, msg) != nil {
			break
		}
		select {
		case err := <-read:
			read <- err
			sent = 100000
		default:
		}
	}
	var ce *websocket.CloseError
	select {
	case err := <-read:
		if !errors.As(err, &ce) || ce.Code != 1008 || !strings.Contains(ce.Text, fsm.ErrDataFlood.Error()) {
			t.Fatalf("the flooder read %v, want close 1008 %q", err, fsm.ErrDataFlood)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the flooder was not closed")
	}
	if !hub.Online("calm") {
		t.Error("the peer within the rate went offline")
	}
}
