package network

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// Delivery is how a link direction delivers packets.
type Delivery uint8

const (
	// Stream is what a WebSocket over TCP sees: nothing is lost and order is
	// kept, but a lost packet is retransmitted after a retransmission
	// timeout (RTO) that starts at InitialRTO and doubles up to MaxRTO, and
	// the packets behind it wait (head-of-line blocking).
	Stream Delivery = iota
	// Datagram delivers each packet on its own: loss is loss, packets may
	// be duplicated and overtake each other.
	Datagram
)

func (d Delivery) String() string {
	switch d {
	case Stream:
		return "stream"
	case Datagram:
		return "datagram"
	}
	return "delivery(?)"
}

// TCP's retransmission timer as Linux runs it: RTO at least 200 ms
// (TCP_RTO_MIN), doubling up to 120 s (TCP_RTO_MAX), given up after 15
// retransmissions (tcp_retries2), about 15 minutes.
const (
	InitialRTO     = 200 * time.Millisecond
	MaxRTO         = 120 * time.Second
	MaxRetransmits = 15
)

// Dir configures one direction of a link.
type Dir struct {
	Latency  Latency  // one-way delay of a packet that gets through
	Loss     Loss     // which transmissions are lost
	Delivery Delivery // Stream (the zero value) or Datagram
	// Duplicate (datagram only) is the probability that a delivered packet
	// arrives a second time, with its own delay.
	Duplicate float64
	// Reorder (datagram only) is the probability that a packet is held
	// back by an extra delay drawn uniformly from [0, ReorderDelay), so
	// that later packets overtake it.
	Reorder      float64
	ReorderDelay time.Duration
}

// Validate reports a direction that cannot run.
func (d Dir) Validate() error {
	if err := d.Latency.Validate(); err != nil {
		return err
	}
	if err := d.Loss.Validate(); err != nil {
		return err
	}
	if d.Delivery > Datagram {
		return fmt.Errorf("network: unknown delivery model %d (want stream or datagram)", d.Delivery)
	}
	if d.Duplicate < 0 || d.Duplicate > 1 || d.Reorder < 0 || d.Reorder > 1 {
		return fmt.Errorf("network: duplicate %g and reorder %g probabilities must be in [0, 1]", d.Duplicate, d.Reorder)
	}
	if d.Delivery == Stream && (d.Duplicate > 0 || d.Reorder > 0) {
		return fmt.Errorf("network: a stream link neither duplicates nor reorders (got duplicate %g, reorder %g); use datagram delivery", d.Duplicate, d.Reorder)
	}
	if d.ReorderDelay < 0 {
		return fmt.Errorf("network: reorder delay %v must not be negative", d.ReorderDelay)
	}
	return nil
}

// Link is a connection's two directions: Up from client to server, Down
// from server to client.
type Link struct {
	Up, Down Dir
}

// Validate reports a link that cannot run.
func (l Link) Validate() error {
	if err := l.Up.Validate(); err != nil {
		return fmt.Errorf("%w (client→server)", err)
	}
	if err := l.Down.Validate(); err != nil {
		return fmt.Errorf("%w (server→client)", err)
	}
	return nil
}

// Symmetric returns a link whose two directions are both d.
func Symmetric(d Dir) Link { return Link{Up: d, Down: d} }

// State is one direction's running state on one connection: the zero
// value is a direction that has sent nothing yet.
type State struct {
	lastArrive int64 // stream: the latest arrival scheduled (order is kept)
	lastTx     int64 // the latest transmission (the loss chain's clock)
	bad        bool  // Gilbert–Elliott state
}

// Stats counts packets on the links of a run, both directions together.
// Every packet sent is eventually delivered or dropped, so
// Sent + Duplicated = Delivered + Dropped + InFlight at every moment.
// Transmit counts Retransmits; the driver counts the rest.
type Stats struct {
	Sent        int64 // packets handed to a link (frames and connection control)
	Delivered   int64 // packets that reached a live endpoint of their connection
	Dropped     int64 // lost on a datagram link, given up by TCP, black-holed by a fault, or arriving after their connection ended
	InFlight    int64 // scheduled but not yet arrived
	Duplicated  int64 // extra copies a datagram link made
	Retransmits int64 // stream transmissions lost and repeated
}

// Transmit decides when a packet sent at now (nanoseconds on the caller's
// clock) arrives, or that it never does. Stream packets are retransmitted
// while a transmission is lost or crosses the blackout [bFrom, bUntil);
// datagram packets are simply lost. reliable makes a datagram direction
// retransmit this packet as a stream would (connection control that the
// transport repeats itself). dupAt > 0 is a second arrival of a
// duplicated datagram.
func (d *Dir) Transmit(r *rand.Rand, st *State, now, bFrom, bUntil int64, reliable bool, stats *Stats) (at, dupAt int64, ok bool) {
	if d.Delivery == Stream || reliable {
		a := now
		rto := int64(InitialRTO)
		for n := 0; ; n++ {
			lat := d.Latency.Sample(r)
			lost := d.Loss.lost(r, st, a)
			if !lost && (a >= bUntil || a+lat <= bFrom) {
				at = a + lat
				break
			}
			if n == MaxRetransmits {
				return 0, 0, false
			}
			stats.Retransmits++
			a += rto
			rto = min(2*rto, int64(MaxRTO))
		}
		if d.Delivery == Stream {
			at = max(at, st.lastArrive)
			st.lastArrive = at
		}
		return at, 0, true
	}
	lat := d.Latency.Sample(r)
	if d.Loss.lost(r, st, now) || (now < bUntil && now+lat > bFrom) {
		return 0, 0, false
	}
	at = now + lat
	if d.Reorder > 0 && r.Float64() < d.Reorder {
		at += int64(r.Float64() * float64(d.ReorderDelay))
	}
	if d.Duplicate > 0 && r.Float64() < d.Duplicate {
		dupAt = now + d.Latency.Sample(r)
	}
	return at, dupAt, true
}
