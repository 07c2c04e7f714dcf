// Package fsm is the liveness core: a sans-I/O state machine that decides
// whether the peer of a long-lived connection is still there, and a driver
// that runs it on a real connection and clock.
//
// # The Machine
//
// A Machine is handed time and inputs and returns actions; it reads no clock,
// starts no goroutine, owns no socket and draws no randomness. Whoever drives
// it (the Driver below, the simulator in package sim, a test) runs this loop:
//
//	m, err := fsm.NewMachine(fsm.Config{})
//	var acts []fsm.Action
//	acts = m.Step(now, fsm.Input{Kind: fsm.Start}, acts[:0])
//	for {
//		for _, a := range acts {
//			// SendPing, SendPong, Dial, CloseTransport: do it;
//			// StateChanged: tell the user.
//		}
//		// Wait for the first of: an inbound frame or transport event,
//		// or the time m.Deadline().
//		acts = m.Step(now, input, acts[:0])
//	}
//
// States are Connecting, Alive, Suspect, Dead, Reconnecting and Closed; the
// legal transitions are declared once, in looplab/fsm's form, and
// Transitions lists them (docs/state-machine.md draws them). Any inbound frame is evidence of life.
// Heartbeats go out only when the policy says the line has been idle long
// enough, so a busy connection costs no pings.
//
// # Time and stalls
//
// The Machine reasons from timestamps, not from counting timer fires. If it
// is woken more than Config.StallThreshold after its deadline, the silence it
// sees was partly its own: a suspended laptop or a throttled process. It then
// does not convict: it sends a probe and waits at least Config.StallGrace (or
// the detector's suspect-to-dead window, if longer) for an answer. A side
// that never pings waits a whole dead timeout for the peer's own heartbeat.
//
// # The Driver
//
// Run binds a Machine to a transport.Dialer and a benbjohnson/clock Clock
// (the real clock by default; clock.NewMock in tests) on one goroutine:
//
//	d, err := fsm.Run(ctx, fsm.DriverConfig{
//		Dialer:   dialer,
//		OnChange: func(c fsm.Change) { log.Println(c) },
//	})
//	defer d.Close()
//
// State changes reach OnChange in order, none dropped, on the driver's
// goroutine. Close, or cancelling ctx, closes the connection and ends the
// goroutine.
package fsm
