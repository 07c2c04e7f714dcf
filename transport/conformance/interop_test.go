package conformance_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	coder "github.com/coder/websocket"
	"github.com/gorilla/websocket"
	"github.com/lesismal/nbio/logging"
	"go.uber.org/goleak"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/transport/coderws"
	"github.com/heartbeat-go/heartbeat/transport/conformance"
	"github.com/heartbeat-go/heartbeat/transport/gorillaws"
	"github.com/heartbeat-go/heartbeat/transport/wire"
)

// TestMain checks that no goroutine outlives its test, the fault proxy's
// included.
func TestMain(m *testing.M) {
	logging.SetLevel(logging.LevelNone) // nbio's
	goleak.VerifyTestMain(m,
		goleak.IgnoreCurrent(), // nbio's websocket package starts a default engine's pools at init
	)
}

// TestCrossConformance runs the suite on mixed pairs: a gorilla server with
// a coder client and the reverse, in each heartbeat format.
func TestCrossConformance(t *testing.T) {
	conformance.RunFormats(t, "gorilla-server+coder-client", func(t *testing.T, _ wire.Format, subs []string) (a, b conformance.End) {
		s, c := gorillaServerCoderClient(t, subs)
		return gorillaEnd(s), coderEnd(c)
	})
	conformance.RunFormats(t, "coder-server+gorilla-client", func(t *testing.T, _ wire.Format, subs []string) (a, b conformance.End) {
		s, c := coderServerGorillaClient(t, subs)
		return coderEnd(s), gorillaEnd(c)
	})
}

func gorillaEnd(c *gorillaws.Conn) conformance.End {
	return conformance.End{
		Conn:                c,
		Bind:                c.Bind,
		SendData:            func(ctx context.Context) error { return c.Write(ctx, websocket.TextMessage, []byte("data")) },
		Abort:               func() { _ = c.WebSocket().UnderlyingConn().Close() },
		PingsCarrySeq:       true,
		PingsCarryAdvice:    true,
		SendsPongs:          true,
		ReportsCleanClose:   true,
		CoalescesHeartbeats: true,
	}
}

func coderEnd(c *coderws.Conn) conformance.End {
	app := c.Format() != wire.Control
	return conformance.End{
		Conn:              c,
		Bind:              c.Bind,
		SendData:          func(ctx context.Context) error { return c.Write(ctx, coder.MessageText, []byte("data")) },
		Abort:             func() { _ = c.WebSocket().CloseNow() },
		PingsCarrySeq:     app,
		PingsCarryAdvice:  app,
		SendsPongs:        app,
		ReportsCleanClose: true,
	}
}

func gorillaServerCoderClient(t *testing.T, subs []string) (*gorillaws.Conn, *coderws.Conn) {
	t.Helper()
	url, accepted := conformance.Serve(t, func(w http.ResponseWriter, r *http.Request) (*gorillaws.Conn, error) {
		ws, err := (&websocket.Upgrader{Subprotocols: subs}).Upgrade(w, r, nil)
		if err != nil {
			return nil, err
		}
		return gorillaws.Wrap(ws, gorillaws.Options{ConnID: "g-1"})
	})
	h := coderws.NewHooks()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	ws, _, err := coder.Dial(ctx, url, h.DialOptions(&coder.DialOptions{Subprotocols: subs}))
	if err != nil {
		t.Fatal(err)
	}
	c, err := coderws.Wrap(ws, h, coderws.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := accepted()
	t.Cleanup(func() { _ = c.Close(nil); _ = s.Close(nil) })
	return s, c
}

func coderServerGorillaClient(t *testing.T, subs []string) (*coderws.Conn, *gorillaws.Conn) {
	t.Helper()
	url, accepted := conformance.Serve(t, func(w http.ResponseWriter, r *http.Request) (*coderws.Conn, error) {
		return coderws.Accept(w, r, &coder.AcceptOptions{Subprotocols: subs}, coderws.Options{ConnID: "k-1"})
	})
	ws, resp, err := (&websocket.Dialer{Subprotocols: subs}).Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	c, err := gorillaws.Wrap(ws, gorillaws.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := accepted()
	t.Cleanup(func() { _ = c.Close(nil); _ = s.Close(nil) })
	return s, c
}

var pairings = []struct{ server, client string }{
	{"gorilla", "coder"},
	{"coder", "gorilla"},
	{"gorilla", "gorilla"},
	{"coder", "coder"},
	// nbiows is server-side only: its connections read by an epoll loop.
	{"nbio", "gorilla"},
	{"nbio", "coder"},
}

// TestHealthyStaysAlive: over a run of 12 answered heartbeats (about
// 1.2 s, twice the dead timeout) neither side suspects the other.
func TestHealthyStaysAlive(t *testing.T) {
	for _, p := range pairings {
		t.Run(fmt.Sprintf("%s-server/%s-client", p.server, p.client), func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, p.server)
			var readers sync.WaitGroup
			d := conformance.NewCounter(clientDialer(t, p.client, srv.url(), &readers))
			drv, w := runClient(t, d)
			w.WaitFor(t, 0, "alive", conformance.To(fsm.Alive))
			d.WaitHeartbeats(t, 12, patience(12))
			if bad := w.Verdicts(0); len(bad) > 0 {
				t.Errorf("false verdicts on a healthy link: %v", bad)
			}
			if n := srv.online.Load(); n != 1 {
				t.Errorf("server saw %d peers come online, want 1", n)
			}
			select {
			case c := <-srv.gone:
				t.Errorf("server reported the healthy peer offline: %v", c)
			default:
			}
			_ = drv.Close()
			readers.Wait()
		})
	}
}

// TestServerKilledAndRestarted: killing the server makes the client dead
// within the dead timeout, and it is back alive once the server returns.
func TestServerKilledAndRestarted(t *testing.T) {
	for _, p := range pairings[:2] {
		t.Run(fmt.Sprintf("%s-server/%s-client", p.server, p.client), func(t *testing.T) {
			srv := newServer(t, p.server)
			var readers sync.WaitGroup
			drv, w := runClient(t, clientDialer(t, p.client, srv.url(), &readers))
			w.WaitFor(t, 0, "alive", conformance.To(fsm.Alive))
			srv.waitRegistered(t, 1)
			mark := w.Len()
			killed := time.Now()
			srv.kill()
			i, c := w.WaitFor(t, mark, "dead", conformance.To(fsm.Dead))
			if took := c.At.Sub(killed); took > deadAfter {
				t.Errorf("dead %v after the kill, bound %v", took, deadAfter)
			}
			// While it is down the client keeps trying and failing.
			w.WaitFor(t, i, "a failed redial", func(c fsm.Change) bool { return c.Reason == fsm.ReasonDialFailed })
			srv.start()
			w.WaitFor(t, i, "alive again", conformance.To(fsm.Alive))
			_ = drv.Close()
			readers.Wait()
		})
	}
}
