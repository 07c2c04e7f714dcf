package fsm

// State is where a connection stands. The names are the words used in logs,
// in the transition declaration and in the diagram.
type State uint8

const (
	// Connecting: a dial (or, for the server role, the bind of an accepted
	// connection) is in progress.
	Connecting State = iota
	// Alive: evidence of life arrived recently.
	Alive
	// Suspect: evidence is late; the machine probes before it convicts.
	Suspect
	// Dead: the peer is gone and the transport has been closed. Final for the
	// server role; a client moves on to Reconnecting at once.
	Dead
	// Reconnecting: waiting out a backoff delay before the next dial.
	Reconnecting
	// Closed: terminal. The user closed it, the backoff gave up or, for the
	// server role, the peer left (closed the connection cleanly).
	Closed

	numStates = iota
)

var stateNames = [numStates]string{"connecting", "alive", "suspect", "dead", "reconnecting", "closed"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "state(?)"
}

// Role says which side of the connection a Machine is.
type Role uint8

const (
	// Client dials, and redials after the peer is lost.
	Client Role = iota
	// Server watches an accepted connection; a dead peer is final.
	Server
)

func (r Role) String() string {
	switch r {
	case Client:
		return "client"
	case Server:
		return "server"
	}
	return "role(?)"
}

// Reason says why a transition happened.
type Reason uint8

const (
	ReasonNone           Reason = iota
	ReasonConnected             // the dial or bind succeeded
	ReasonDialFailed            // the dial or bind failed
	ReasonConnectTimeout        // the dial took longer than Config.ConnectTimeout
	ReasonSilence               // the detector's suspect timeout passed
	ReasonLocalStall            // the machine woke late: it probes before it convicts
	ReasonEvidence              // a frame arrived while suspect
	ReasonUnanswered            // the detector's dead timeout passed
	ReasonPeerClosed            // the transport reported the connection closed
	ReasonSendFailed            // a heartbeat could not be written
	ReasonPingFlood             // the peer pinged faster than Config.MinPingInterval allows
	ReasonRetry                 // a client lost its peer and will redial
	ReasonBackoffElapsed        // the reconnect delay is over
	ReasonGaveUp                // the backoff gave up
	ReasonUserClose             // Close was requested
	ReasonPeerLeft              // the peer closed the connection cleanly (ErrPeerLeft): an end, not a death
	ReasonDataFlood             // the peer sent application messages faster than Config.DataRate allows

	numReasons = iota
)

var reasonNames = [numReasons]string{
	"none", "connected", "dial failed", "connect timeout", "silence", "local stall",
	"evidence", "unanswered", "peer closed", "send failed", "ping flood", "retry",
	"backoff elapsed", "gave up", "user close", "peer left", "data flood",
}

func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "reason(?)"
}
