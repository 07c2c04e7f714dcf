// Package policy holds the decisions a liveness Machine (package fsm) asks
// for: when to ping (Interval), when the silent peer is suspect and when it
// is dead (Detector), and how long to wait before the next dial (Backoff).
// It knows nothing about transports.
//
// # Using policies
//
// Each connection owns its own instances (most keep per-connection state).
// Build them directly, take a named preset, or take the defaults, and hand
// them to the Machine:
//
//	r := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())) // the connection's own source, seeded differently on every client
//	p, err := policy.Lookup("default")        // or "socketio", "adaptive@socketio", …
//	s := p.Client(r)                          // p.Server(r) on the accepting side
//	m, err := fsm.NewMachine(fsm.Config{
//		Detector: s.Detector, Interval: s.Interval, Backoff: s.Backoff,
//	})
//
// The Machine then asks, on its own schedule:
//
//	det.Start(now)                  // a connection was established
//	det.Observe(now, rtt)           // a frame arrived
//	suspect, dead := det.Timeouts() // how much silence is too much
//	next := iv.NextPing(link)       // when to ping
//	delay, err := bo.Next(retry)    // how long to wait before dial n
//
// Everything on that path is O(1) and allocates nothing.
//
// # What is here
//
// Detectors: Fixed (suspect and dead timeouts after the last evidence, the
// shape of gorilla's chat example and Socket.IO), Adaptive (the recommended
// default: a Jacobson/Bertier estimate of heartbeat lateness plus a margin
// from its variation, and probes before a verdict) and PhiAccrual (Akka's φ
// accrual). Each states its worst-case detection time for a network bound
// (Bounded).
//
// Intervals: Every (fixed period), Idle (only when the line is idle),
// AdaptiveInterval (idle-only, faster while suspect, relaxing back while
// stable), Listen (only to probe a suspect peer, and with Advise now and
// then so that a server's reconnect-window advice reaches its clients) and
// Never.
//
// Backoffs, each drawing only from the *rand.Rand it is given, so one seed
// replays it: Constant, Exponential (with a randomization factor), FullJitter,
// EqualJitter and Decorrelated (AWS's three), GRPC (gRPC's connection-backoff
// spec), Table (Phoenix, SignalR), Advised (the server-advised reconnect
// window) and Limit (max attempts, max total time around any of them).
//
// Presets reproduce well-known systems' defaults for both sides, each citing
// its source: gorilla, socketio, signalr, phoenix, ws, centrifuge, grpc,
// akka; plus default, fixed, adaptive and phi. EqualCost builds the
// adaptive row at any preset's cadence, and Lookup("adaptive@P") returns it.
//
// Zero values of settings mean documented defaults; Validate (or the New…
// constructors) reports nonsense as a *ConfigError. docs/policies.md gives
// every formula, parameter and source.
package policy
