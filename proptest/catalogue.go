package proptest

// Invariant is one entry of the catalogue: an ID that failure messages,
// Select and docs/invariants.md share, a short name and the one sentence it
// asserts.
type Invariant struct {
	ID        string
	Name      string
	Statement string
}

// The invariant IDs. A failure message starts with "[ID name]".
const (
	M1 = "M1" // only declared transitions
	M2 = "M2" // closed is absorbing
	M3 = "M3" // agrees with the reference model
	M4 = "M4" // exhaustive exploration
	L1 = "L1" // deadline strictly in the future
	L2 = "L2" // no busy loop
	L3 = "L3" // a late wake-up does not convict by itself
	L4 = "L4" // the goroutine driver
	D1 = "D1" // detector contract
	C1 = "C1" // completeness
	A1 = "A1" // accuracy: never dead
	A2 = "A2" // accuracy: never suspect
	E1 = "E1" // evidence clears suspicion
	F1 = "F1" // an honest peer is never a flood
	P1 = "P1" // ping spacing
	P2 = "P2" // ping liveness
	B1 = "B1" // delay bounds
	B2 = "B2" // envelope never shrinks
	B3 = "B3" // attempt limit
	B4 = "B4" // elapsed-time limit
	B5 = "B5" // reset restarts the schedule
	B6 = "B6" // same seed, same delays
	B7 = "B7" // storm spreading
	B8 = "B8" // the machine's side of the backoff contract
	Q1 = "Q1" // fleet advice within bounds
	Q2 = "Q2" // outliers cannot push the advice past the stated quantile
	Q3 = "Q3" // any advice keeps the detector's detection bound
	V1 = "V1" // a checkable promise and configuration
)

var catalogue = []Invariant{
	{M1, "declared transitions", "Every state change the Machine reports starts from its current state and is an edge of fsm.Transitions, as a looplab/fsm FSM built from it accepts; Step never panics."},
	{M2, "closed is absorbing", "Once Closed, the Machine emits no action of any kind for any input and reports no deadline."},
	{M3, "reference model", "Driven by random inputs at random times, the Machine agrees with a reference model built from the looplab/fsm declaration on every step."},
	{M4, "exhaustive", "For a small configuration on abstracted time, every state reachable within the depth bound satisfies M1, M2, L1, L2, E1 and C1."},
	{L1, "deadline in the future", "After every step Deadline is zero or strictly after that step's time, and it is zero only when nothing can be pending (closed, a dead server, before Start) or the pending timer lies beyond what a time.Duration can express."},
	{L2, "no busy loop", "Every wake-up at the reported deadline produces at least one action, and a run never takes more steps than its traffic explains."},
	{L3, "late wake-up", "The first step of a silence that wakes more than StallThreshold after its deadline never convicts the peer, and on a healthy link whose round trip fits the stall grace, pauses of any length never lead to a dead verdict when frames queued during the pause are handed over before the late timer."},
	{L4, "goroutine driver", "fsm.Run over transport/mem, inside testing/synctest bubbles, reports only declared transitions in order, detects a cut link within the detection bound, stops sending when closed and leaves no goroutine behind."},
	{D1, "detector contract", "After Start and after every Observe, Timeouts returns 0 < suspect <= dead, and two instances fed the same calls return the same timeouts."},
	{C1, "completeness", "After the peer really fails (a crash, a partition, a half-open link that silences it) at time t, the machine is dead by t + Detection, whatever loss and latency happened before t."},
	{A1, "accuracy", "While the link is healthy (no loss; for a machine each frame takes at most MaxRTT/2 one way, for a detector alone no two frames arrive more than Heartbeat + MaxRTT apart), the machine never declares the peer dead, on connections that live as long as the promised Lifetime."},
	{A2, "no false suspicion", "Under the same healthy network, a machine that promises it never even suspects the peer."},
	{E1, "evidence clears suspicion", "Any frame received while suspect returns the machine to alive in the same step, unless that frame is a ping that breaks the flood limit."},
	{F1, "honest peer", "A peer that pings no faster than the flood meter's rate, min(MinPingInterval, fsm.DefaultMinPingInterval), is never convicted of a ping flood, while the delay varies by at most (PingBurst - 1) times that rate, whatever our own pauses."},
	{P1, "ping spacing", "Two pings on one connection are never closer than the interval's promised minimum (and never closer than MinPingInterval)."},
	{P2, "ping liveness", "While alive or suspect, the line is never idle (no ping sent, no frame received) for longer than the interval's promised maximum."},
	{B1, "delay bounds", "Every delay lies in [Min, Max] (Max raised to the server's advice when one is given), and is never negative."},
	{B2, "envelope", "The upper envelope of the delays (the largest delay over many seeds at each attempt) never shrinks by more than half before a reset."},
	{B3, "attempt limit", "A backoff with MaxAttempts gives up exactly after that many attempts, with an error wrapping policy.ErrGaveUp, and never before."},
	{B4, "time limit", "A backoff with MaxElapsed never schedules a dial past MaxElapsed from the start of the streak and gives up, with an error wrapping policy.ErrGaveUp, once that much has elapsed; it never gives up before, unless its next delay (at most Max, or twice its longest so far) could cross the limit."},
	{B5, "reset", "After a streak of any length, attempt 1 gets a first delay again (at most First) and does not give up."},
	{B6, "replayable", "Two instances built from the same seed give the same delays and errors for the same attempts."},
	{B7, "storm spreading", "When many clients lose the server at once, no window of a tenth of the mean first delay holds more of any round's attempts than MaxRatio times a uniform spread over twice that mean, or over MinSpread (1 s by default) if that is longer."},
	{B8, "machine backoff", "The Machine asks the backoff for attempt 1 after a connection that stayed up StableAfter and counts on otherwise, and when the backoff gives up it is Closed with ReasonGaveUp and the backoff's error."},
	{Q1, "advice bounds", "Whatever silences a fleet estimator observes (negative, zero, days long, in bulk, in many classes, at times going backwards or years apart), its advice for every class is 0 (none) or within [Min, Max]."},
	{Q2, "robust advice", "Outlier silences rarer than ε < TailRate per connection-day never raise the advice above max(Min, Factor × the silence the ordinary ones exceed TailRate − ε times per connection-day), within the estimator's resolution."},
	{Q3, "advised bound", "Whatever advice a detector takes, at any point of any history, its dead timeout plus the round trip stays within its own DetectionBound, and advice never shortens the dead timeout it would have without."},
	{V1, "valid setup", "The promise is well-formed, the configuration under test (and the peer's, from MachinePromise.Peer) is accepted by fsm.NewMachine, and the peer never asks to ping faster than the flood meter allows; otherwise the check refuses to run."},
}

// Catalogue returns every invariant the harness checks, in catalogue order.
func Catalogue() []Invariant {
	return append([]Invariant(nil), catalogue...)
}

func invariantName(id string) string {
	for _, inv := range catalogue {
		if inv.ID == id {
			return inv.Name
		}
	}
	return "unknown"
}
