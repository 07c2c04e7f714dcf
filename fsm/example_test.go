package fsm_test

import (
	"context"
	"fmt"
	"time"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/policy"
	"github.com/heartbeat-go/heartbeat/transport"
	"github.com/heartbeat-go/heartbeat/transport/mem"
)

// Driving a Machine by hand: the peer answers one ping, then falls silent.
func ExampleMachine() {
	m, err := fsm.NewMachine(fsm.Config{
		Detector: &policy.Fixed{SuspectAfter: 10 * time.Second, DeadAfter: 15 * time.Second},
		Interval: &policy.Idle{Every: 5 * time.Second},
		Backoff:  &policy.Constant{Delay: time.Second},
	})
	if err != nil {
		panic(err)
	}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := start
	var acts []fsm.Action
	show := func() {
		for _, a := range acts {
			switch a.Kind {
			case fsm.SendPing:
				fmt.Printf("%v ping #%d\n", now.Sub(start), a.Seq)
			case fsm.StateChanged:
				fmt.Printf("%v %v → %v (%v)\n", now.Sub(start), a.From, a.To, a.Reason)
			}
		}
	}
	acts = m.Step(now, fsm.Input{Kind: fsm.Start}, acts[:0])
	acts = m.Step(now, fsm.Input{Kind: fsm.Connected}, acts[:0])
	show()
	now = m.Deadline()
	acts = m.Step(now, fsm.Input{Kind: fsm.DeadlineReached}, acts[:0])
	show()
	now = now.Add(30 * time.Millisecond)
	acts = m.Step(now, fsm.Input{Kind: fsm.FrameIn, Frame: transport.Frame{Kind: transport.Pong, Seq: 1}}, acts[:0])
	for m.State() != fsm.Reconnecting {
		now = m.Deadline()
		acts = m.Step(now, fsm.Input{Kind: fsm.DeadlineReached}, acts[:0])
		show()
	}
	// Output:
	// 0s connecting → alive (connected)
	// 5s ping #1
	// 10.03s ping #2
	// 15.03s alive → suspect (silence)
	// 15.03s ping #3
	// 20.03s suspect → dead (unanswered)
	// 20.03s dead → reconnecting (retry)
}

// Running a client on the in-memory transport: the driver dials, the
// connection comes alive, and Close ends it.
func ExampleRun() {
	server := mem.Listen(nil, func(c *mem.Conn) { c.Bind(discard{}) })
	alive := make(chan struct{})
	d, err := fsm.Run(context.Background(), fsm.DriverConfig{
		Dialer: server,
		OnChange: func(c fsm.Change) {
			fmt.Println(c)
			if c.To == fsm.Alive {
				close(alive)
			}
		},
	})
	if err != nil {
		panic(err)
	}
	<-alive
	d.Close()
	server.Crash(nil)
	// Output:
	// connecting → alive (connected)
	// alive → closed (user close): heartbeat: closed
}

type discard struct{}

func (discard) Frame(transport.Frame) {}
func (discard) Closed(error)          {}
