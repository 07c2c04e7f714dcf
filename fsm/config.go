package fsm

import (
	"fmt"
	"math"
	"time"

	"github.com/heartbeat-go/heartbeat/policy"
)

// Defaults used where a Config field is zero.
const (
	// DefaultConnectTimeout bounds one dial; gRPC's minimum connect timeout
	// and Socket.IO's connect timeout are both 20 s.
	DefaultConnectTimeout = 20 * time.Second
	// DefaultStableAfter is how long a connection must stay up before a
	// loss starts a fresh backoff streak (reconnecting-websocket's
	// minUptime), so a server that accepts and drops at once is not hammered.
	DefaultStableAfter = 5 * time.Second
	// DefaultStallThreshold is how late a wake-up must be before the machine
	// blames its own stall (a suspended laptop, a throttled tab) rather than
	// the peer's silence.
	DefaultStallThreshold = time.Second
	// DefaultStallGrace is the least time a probe sent after a stall gets to
	// be answered before the peer can be convicted.
	DefaultStallGrace = 3 * time.Second
	// DefaultMinPingInterval keeps our own pings at least this far apart and
	// is the rate at which the peer's pings are accepted without strikes.
	DefaultMinPingInterval = 100 * time.Millisecond
	// DefaultPingBurst is how many pings beyond that rate the peer may send
	// in a burst (after a retransmission stall, queued pings arrive
	// together) before the connection is closed as a ping flood.
	DefaultPingBurst = 50
)

// Config configures one Machine. The zero value is a client with the default
// policies and the defaults above.
type Config struct {
	Role Role

	// Detector, Interval and Backoff are this connection's own policy
	// instances (policies keep per-connection state: do not share them).
	// Nil means policy.Default's. Backoff is unused by the server role.
	Detector policy.Detector
	Interval policy.Interval
	Backoff  policy.Backoff

	// ConnectTimeout bounds a dial. Zero means DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// StableAfter: a connection that stayed alive this long before it was
	// lost starts a new backoff streak (Retry.Attempt 1). Zero means
	// DefaultStableAfter.
	StableAfter time.Duration
	// StallThreshold: a wake-up later than this past the deadline is the
	// machine's own stall. Zero means DefaultStallThreshold; negative
	// disables the stall guard.
	StallThreshold time.Duration
	// StallGrace: after a stall the peer is not convicted before a probe had
	// at least this long to be answered. Zero means DefaultStallGrace.
	StallGrace time.Duration
	// MinPingInterval: our pings are never closer than this, and the peer's
	// pings refill its burst allowance at this rate or at
	// DefaultMinPingInterval's, whichever is faster: spacing our own pings
	// further apart does not make a peer that pings every second a flood.
	// Zero means DefaultMinPingInterval.
	MinPingInterval time.Duration
	// PingBurst: how many pings the peer may send beyond MinPingInterval's
	// rate before the machine closes the connection (ReasonPingFlood). Zero
	// means DefaultPingBurst; negative disables the enforcement.
	PingBurst int
	// DataRate, if positive, is how many application messages per second
	// the peer may send on average; beyond a burst of DataBurst more the
	// machine closes the connection (ReasonDataFlood, ErrDataFlood: a
	// WebSocket adapter sends 1008 with the reason). Zero means no limit,
	// the default: what a message costs is the application's to judge.
	DataRate float64
	// DataBurst is how many messages beyond DataRate's pace the peer may
	// send at once. Zero means one second's worth of DataRate, at least 1.
	DataBurst int
	// DataByteRate, if positive, is how many bytes of application messages
	// per second the peer may send on average (transport.Frame.Size, as the
	// adapters report it); beyond a burst of DataByteBurst more, the same
	// close as DataRate's. Zero means no limit, the default.
	DataByteRate float64
	// DataByteBurst is how many bytes beyond DataByteRate's pace the peer
	// may send at once; a single message larger than it always closes, so
	// keep it at or above the adapter's read limit. Zero means one second's
	// worth of DataByteRate.
	DataByteBurst int
}

// withDefaults returns c with zero fields replaced by defaults, or an error
// naming the first nonsense field.
func (c Config) withDefaults() (Config, error) {
	if c.Role != Client && c.Role != Server {
		return c, fmt.Errorf("heartbeat: role %d is neither client nor server", c.Role)
	}
	if c.Detector == nil || c.Interval == nil || (c.Backoff == nil && c.Role == Client) {
		var d policy.Detector
		var i policy.Interval
		var b policy.Backoff
		if c.Role == Client {
			d, i, b = policy.Default()
		} else {
			// The server never redials: no backoff, and no random source
			// seeded for it.
			s := policy.DefaultSet(nil)
			d, i = s.Detector, s.Interval
		}
		if c.Detector == nil {
			c.Detector = d
		}
		if c.Interval == nil {
			c.Interval = i
		}
		if c.Backoff == nil {
			c.Backoff = b
		}
	}
	def := func(p *time.Duration, name string, v time.Duration) error {
		switch {
		case *p == 0:
			*p = v
		case *p < 0:
			return fmt.Errorf("heartbeat: %s %v must be positive (zero means the default %v)", name, *p, v)
		}
		return nil
	}
	if err := def(&c.ConnectTimeout, "connect timeout", DefaultConnectTimeout); err != nil {
		return c, err
	}
	if err := def(&c.StableAfter, "stable-after period", DefaultStableAfter); err != nil {
		return c, err
	}
	if err := def(&c.StallGrace, "stall grace", DefaultStallGrace); err != nil {
		return c, err
	}
	if err := def(&c.MinPingInterval, "minimum ping interval", DefaultMinPingInterval); err != nil {
		return c, err
	}
	if c.StallThreshold == 0 {
		c.StallThreshold = DefaultStallThreshold
	}
	if c.PingBurst == 0 {
		c.PingBurst = DefaultPingBurst
	}
	switch {
	case c.DataRate < 0 || math.IsNaN(c.DataRate) || math.IsInf(c.DataRate, 0):
		return c, fmt.Errorf("heartbeat: data rate %v must be a positive number of messages per second (zero means no limit)", c.DataRate)
	case c.DataBurst < 0:
		return c, fmt.Errorf("heartbeat: data burst %d must not be negative (zero means one second of the rate)", c.DataBurst)
	case c.DataRate > 0 && c.DataBurst == 0:
		c.DataBurst = max(int(math.Ceil(c.DataRate)), 1)
	}
	switch {
	case c.DataByteRate < 0 || math.IsNaN(c.DataByteRate) || math.IsInf(c.DataByteRate, 0):
		return c, fmt.Errorf("heartbeat: data byte rate %v must be a positive number of bytes per second (zero means no limit)", c.DataByteRate)
	case c.DataByteBurst < 0:
		return c, fmt.Errorf("heartbeat: data byte burst %d must not be negative (zero means one second of the rate)", c.DataByteBurst)
	case c.DataByteRate > 0 && c.DataByteBurst == 0:
		c.DataByteBurst = max(int(math.Min(math.Ceil(c.DataByteRate), math.MaxInt32)), 1)
	}
	set := policy.Set{Detector: c.Detector, Interval: c.Interval, Backoff: c.Backoff}
	if c.Role == Server {
		set.Backoff = nil // unused
	}
	if err := set.Validate(); err != nil {
		return c, fmt.Errorf("heartbeat: %w", err)
	}
	return c, nil
}
