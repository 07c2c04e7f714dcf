// Command hbsim compares heartbeat policies on simulated networks.
//
// Until the simulator lands it plays one client connection's life on a
// virtual clock: connect, a silent peer, suspicion, death and reconnection,
// printing each transition with its virtual time.
package main

import (
	"fmt"
	"os"
	"time"

	"github.com/heartbeat-go/heartbeat/fsm"
)

func main() {
	if err := demo(); err != nil {
		fmt.Fprintln(os.Stderr, "hbsim:", err)
		os.Exit(1)
	}
}

func demo() error {
	m, err := fsm.NewMachine(fsm.Config{})
	if err != nil {
		return err
	}
	start := time.Unix(0, 0).UTC()
	now := start
	var acts []fsm.Action
	step := func(in fsm.Input) {
		acts = m.Step(now, in, acts[:0])
		for _, a := range acts {
			switch a.Kind {
			case fsm.StateChanged:
				fmt.Printf("%8v  %-12v → %-12v %v\n", now.Sub(start), a.From, a.To, a.Reason)
			case fsm.SendPing:
				fmt.Printf("%8v  ping #%d\n", now.Sub(start), a.Seq)
			}
		}
	}
	step(fsm.Input{Kind: fsm.Start})
	step(fsm.Input{Kind: fsm.Connected})
	// The peer answers the first two pings, then falls silent.
	for answered := 0; m.State() != fsm.Connecting; {
		now = m.Deadline()
		step(fsm.Input{Kind: fsm.DeadlineReached})
		if len(acts) > 0 && acts[0].Kind == fsm.SendPing && answered < 2 {
			answered++
			now = now.Add(40 * time.Millisecond)
			step(fsm.Input{Kind: fsm.FrameIn, Frame: fsmPong(acts[0].Seq)})
		}
	}
	step(fsm.Input{Kind: fsm.Connected})
	step(fsm.Input{Kind: fsm.CloseRequested})
	return nil
}
