// Package sim is a deterministic discrete-event network simulator for
// heartbeat policies, and the QoS measurement built on it.
//
// A run drives many client–server connections at once. Each end is a real
// fsm.Machine with the policies of a policy.Preset; the simulator is only
// their driver: it feeds Step the virtual time and the inputs, executes the
// actions (send a ping or pong, dial, close) over simulated links, and
// wakes each machine at its Deadline. One goroutine pops events from a
// min-heap keyed by (virtual time, sequence number); one seeded
// math/rand/v2 source draws every random choice; nothing reads the wall
// clock. The same Config therefore gives the same Result and the same
// trace byte for byte, and independent runs can go on separate cores.
//
// The usage loop:
//
//	prof, _ := sim.ProfileByName("mobile")        // or build a Profile
//	preset, _ := policy.Lookup("default")
//	r, err := sim.Run(sim.Config{Profile: prof, Preset: preset, Conns: 100, Duration: 24 * time.Hour, Seed: 1})
//	if err != nil { … }                           // errors.Is(err, sim.ErrConfig)
//	fmt.Println(r.Detection.Time.P50, r.FalseDeadsPerConnDay(), r.BytesPerConnMin())
//
//	s, err := sim.Storm(sim.StormConfig{Preset: preset, Advise: true}) // reconnect storm
//
// Links are configured per direction (Dir): a latency distribution
// (constant, uniform, normal, log-normal, Pareto, exponential), a loss
// process (Bernoulli or Gilbert–Elliott) and a delivery model: Stream, as a
// WebSocket over TCP sees it (in order, loss turned into retransmission
// delay with head-of-line blocking), or Datagram (loss, duplication,
// reordering). Profiles add weather a live connection must survive (stalls,
// process pauses) and failures it must detect (crashes, partitions,
// half-open links); Faults schedule more. docs/simulator.md describes the
// model and every parameter of the built-in profiles.
//
// Config.Presence also measures server-side presence: presence registries
// fed as presence.Hub feeds its own, scored against the faults (flaps per
// user-day, the leave delay after a crash); see Presence.
package sim
