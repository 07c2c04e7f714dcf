package network

// FaultKind names a fault.
type FaultKind uint8

const (
	// CrashClient: the client's host vanishes silently (lid closed, radio
	// gone): it sends nothing more, packets to it are black-holed for the
	// outage and then answered with a reset; it restarts after the outage.
	CrashClient FaultKind = iota + 1
	// CrashServer: the server side of the connection vanishes silently for
	// the outage; new dials to it go unanswered until it is back.
	CrashServer
	// Partition: both directions of the connection are black-holed for the
	// outage; afterwards the connection's middlebox state is gone, so its
	// packets are answered with resets. New dials fail during the outage.
	Partition
	// HalfOpenUp: client→server packets of the connection are silently
	// dropped from now on while server→client traffic still flows (a
	// blackhole one way). New connections are unaffected.
	HalfOpenUp
	// HalfOpenDown: the same with server→client packets dropped.
	HalfOpenDown
	// CleanClose: the server closes the connection cleanly; the client is
	// told at once and redials. Not a failure to detect.
	CleanClose
	// ServerRestart: the server process restarts: every client's
	// connection is reset at once, and for the outage new dials are
	// refused. Not a failure to detect: the reset tells.
	ServerRestart
	// Pause: the client's own timers stop for the outage and fire late
	// afterwards (a suspended laptop, a throttled background tab); frames
	// are still received and answered. Not a failure to detect.
	Pause

	numFaultKinds = iota + 1
)

var faultNames = [numFaultKinds]string{"", "crash-client", "crash-server", "partition", "half-open-up", "half-open-down", "clean-close", "server-restart", "pause"}

func (k FaultKind) String() string {
	if k.Valid() {
		return faultNames[k]
	}
	return "fault(?)"
}

// Valid reports whether k is one of the kinds above.
func (k FaultKind) Valid() bool { return k != 0 && k < numFaultKinds }

// Failure reports whether the kind is a real failure, one that a
// heartbeat must detect (a crash, a partition, a half-open link), rather
// than an event the transport reports or a local stall.
func (k FaultKind) Failure() bool { return k >= CrashClient && k <= HalfOpenDown }

// Cuts reports which directions a failure silences on the connection it
// hits: up (client→server) and down (server→client). A crashed side's
// packets stop and packets to it are lost, so a crash cuts both.
func (k FaultKind) Cuts() (up, down bool) {
	switch k {
	case CrashClient, CrashServer, Partition:
		return true, true
	case HalfOpenUp:
		return true, false
	case HalfOpenDown:
		return false, true
	}
	return false, false
}

// FaultKinds lists every kind, in order.
func FaultKinds() []FaultKind {
	ks := make([]FaultKind, 0, numFaultKinds-1)
	for k := CrashClient; k < numFaultKinds; k++ {
		ks = append(ks, k)
	}
	return ks
}
