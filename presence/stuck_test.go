package presence

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/heartbeat-go/heartbeat/policy"
	"github.com/heartbeat-go/heartbeat/transport"
)

// stuckConn is a peer whose socket buffer is full: every write blocks until
// its deadline and fails.
type stuckConn struct{ echoConn }

var errStuck = errors.New("write blocked until its deadline")

func (c *stuckConn) SendBy(deadline time.Time, f transport.Frame) error {
	<-time.After(time.Until(deadline))
	return errStuck
}

func (c *stuckConn) Send(ctx context.Context, f transport.Frame) error {
	d, _ := ctx.Deadline()
	return c.SendBy(d, f)
}

// runWithStuckPeer holds 1,000 connections whose server pings every 5 s and
// convicts after 8 s of silence, one of them stuck, for ten minutes of fake
// time, and returns how many of the 999 healthy ones were convicted.
func runWithStuckPeer(t *testing.T, writers int) (convicted int) {
	synctest.Test(t, func(t *testing.T) {
		h, err := NewHub(HubConfig{Writers: writers, Policies: func() policy.Set {
			return policy.Set{Detector: &policy.Fixed{SuspectAfter: 6 * time.Second, DeadAfter: 8 * time.Second}, Interval: &policy.Idle{Every: 5 * time.Second}}
		}})
		if err != nil {
			t.Fatal(err)
		}
		stuck := &stuckConn{}
		if _, err := h.Watch(stuck, "stuck", Identity{User: "stuck", Session: "s"}); err != nil {
			t.Fatal(err)
		}
		// A pong is evidence that asks for no answer: the stuck peer's
		// first write is the server's ping, on a shared writer. (A pong the
		// hub writes inline would block only the peer's own reader.)
		stuck.ev.Frame(transport.Frame{Kind: transport.Pong})
		healthy := make([]echoConn, 999)
		for i := range healthy {
			if _, err := h.Watch(&healthy[i], fmt.Sprint("c", i), Identity{User: fmt.Sprint("u", i), Session: "s"}); err != nil {
				t.Fatal(err)
			}
			healthy[i].ev.Frame(transport.Frame{Kind: transport.Ping, Seq: 1})
		}
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		st := h.Stats()
		convicted = 999 - st.Conns
		t.Logf("writers %d: %+v", writers, st)
		if h.Online("stuck") && st.Conns == 1000 {
			t.Error("the stuck peer was never convicted")
		}
		_ = h.Shutdown(context.Background())
	})
	return convicted
}

func TestStuckPeerDelaysNoOther(t *testing.T) {
	if n := runWithStuckPeer(t, DefaultWriters); n != 0 {
		t.Fatalf("one stuck peer among 1,000: %d healthy connections convicted", n)
	}
	// One writer is enough: when it is held, another starts.
	if n := runWithStuckPeer(t, 1); n != 0 {
		t.Fatalf("one writer and a stuck peer: %d healthy connections convicted", n)
	}
	// The check can fail: without the extra writers, a single writer is
	// held by the stuck peer's write for the write timeout, and with it
	// every other heartbeat.
	defer func(n int) { maxExtraWriters = n }(maxExtraWriters)
	maxExtraWriters = 0
	if n := runWithStuckPeer(t, 1); n == 0 {
		t.Fatal("with one writer and no extra ones the stuck peer delayed nobody: the test proves nothing")
	} else {
		t.Logf("with one writer and no extra ones, the stuck peer got %d healthy connections convicted", n)
	}
}
