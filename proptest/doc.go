// Package proptest checks heartbeat policies, yours or the library's,
// with property-based tests (pgregory.net/rapid): it drives the real
// fsm.Machine over a simulated link with random loss, latency,
// disconnections, peer failures and local pauses, on virtual time, and
// fails your test with rapid's smallest counter-example and the flag that
// replays it when the policy breaks a timeout or backoff invariant.
//
// # The usage loop
//
// Call one function from an ordinary test, with a constructor for your
// policy and what it promises:
//
//	func TestMyDetector(t *testing.T) {
//		proptest.CheckDetector(t,
//			func(r *rand.Rand) policy.Detector { return &mypkg.Detector{} },
//			proptest.DetectorPromise{
//				// a live peer sends every 10 s; a frame takes at most 1 s
//				Network:   policy.NetworkBound{Heartbeat: 10 * time.Second, MaxRTT: time.Second},
//				Detection: 30 * time.Second, // dead within 30 s of a failure
//			})
//	}
//
// CheckInterval, CheckBackoff (and CheckStorm alone) and CheckMachine do
// the same for an interval policy, a reconnect backoff and a whole
// fsm.Config (detector, interval, backoff, client or server role);
// CheckPreset runs all of them on both sides of a policy.Preset. A
// constructor gets its own seeded *rand.Rand and must draw every random
// number from it, so that a failing case replays exactly.
//
// A failure reads, for example:
//
//	[rapid] failed after 3 tests: [C1 completeness] at 1h10m20s: the peer failed (crash-server) at 0s; the machine is still suspect ...
//	To reproduce, specify -run="TestMyDetector/C1_completeness" -rapid.failfile="testdata/rapid/..." (or -rapid.seed=...)
//
// followed by the drawn scenario and the machine's last steps. Every
// failure names an invariant ID, the check's refusal to run included (V1: a
// malformed promise, a configuration fsm.NewMachine rejects, a peer that
// pings faster than the flood meter allows).
//
// Keep testdata/rapid out of version control. rapid replays every fail file
// there before new cases, even with -rapid.nofailfile (which only stops it
// writing new ones): after fixing a bug, clear them with
// rm -r testdata/rapid.
//
// # Invariants
//
// Every property is named by an ID from the catalogue (Catalogue, and
// docs/invariants.md with the test that checks each): M for the state
// machine, L for liveness of the driver loop, D for the detector contract,
// C1 completeness, A1 and A2 accuracy, E1 evidence, F1 flood, P for pings,
// B for backoff, Q for a fleet estimator's advice (CheckFleet) and the
// detectors that take it (CheckAdvised). Select.Only and Select.Skip choose among them.
//
// # Budget
//
// rapid's flags set the effort: the default is 100 cases per property;
// a deep pass is
//
//	go test ./proptest -rapid.checks=20000 -rapid.steps=200
//
// Verdict runs a check without failing a test and reports the first
// broken invariant, for tools that tabulate verdicts.
package proptest
