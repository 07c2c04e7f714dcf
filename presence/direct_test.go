package presence

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/heartbeat-go/heartbeat/policy"
	"github.com/heartbeat-go/heartbeat/transport"
)

// directConn is an echoConn whose Send says it never blocks; fail makes
// its pings fail.
type directConn struct {
	echoConn
	pings atomic.Int64
	fail  bool
}

func (c *directConn) SendNeverBlocks() bool { return true }

var errDirect = errors.New("direct write failed")

func (c *directConn) SendBy(d time.Time, f transport.Frame) error {
	if f.Kind == transport.Ping {
		c.pings.Add(1)
		if c.fail {
			return errDirect
		}
	}
	return c.echoConn.SendBy(d, f)
}

func (c *directConn) Send(_ context.Context, f transport.Frame) error {
	return c.SendBy(time.Time{}, f)
}

// The pings of a Conn whose Send never blocks are written by the timer
// goroutine, never queued for a writer; a failed one still ends the
// connection.
func TestNonBlockingSenderPingsInline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, err := NewHub(HubConfig{Policies: func() policy.Set {
			return policy.Set{Detector: &policy.Fixed{SuspectAfter: 6 * time.Second, DeadAfter: 8 * time.Second}, Interval: &policy.Idle{Every: 5 * time.Second}}
		}})
		if err != nil {
			t.Fatal(err)
		}
		conns := make([]directConn, 100)
		conns[0].fail = true
		for i := range conns {
			if _, err := h.Watch(&conns[i], fmt.Sprint("c", i), Identity{User: fmt.Sprint("u", i), Session: "s"}); err != nil {
				t.Fatal(err)
			}
			// A pong is evidence asking no answer: the first write is
			// the hub's ping.
			conns[i].ev.Frame(transport.Frame{Kind: transport.Pong})
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		st := h.Stats()
		t.Logf("%+v", st)
		if st.WriteQueuePeak != 0 {
			t.Errorf("write queue peaked at %d: pings of a non-blocking Conn went to the writers", st.WriteQueuePeak)
		}
		if n := conns[1].pings.Load(); n < 10 {
			t.Errorf("a healthy connection got %d pings in a minute of 5 s pings", n)
		}
		if st.Conns != 99 || st.SendErrors == 0 {
			t.Errorf("%d connections left, %d send errors: want the failing one ended", st.Conns, st.SendErrors)
		}
		_ = h.Shutdown(context.Background())
	})
}
