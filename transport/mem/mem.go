// Package mem is an in-memory transport for tests: a pair of connected ends
// that deliver frames in order, on a clock.Clock, and can drop, delay and cut
// traffic on command to make a silent peer or a half-open link.
package mem

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/heartbeat-go/heartbeat/transport"
)

// ErrRefused is returned by a Listener's Dial while it is down.
var ErrRefused = errors.New("mem: connection refused")

// Conn is one end of an in-memory connection. It implements transport.Conn.
// Each end runs one delivery goroutine from Bind until Close.
type Conn struct {
	clk  clock.Clock
	peer *Conn

	mu       sync.Mutex
	ev       transport.Events
	queue    []delivery // inbound, in order
	wake     chan struct{}
	closed   bool
	closeErr error
	drop     bool          // outbound frames vanish (half-open when one end only)
	delay    time.Duration // added to every outbound frame
	sent     [4]int        // outbound frames by kind
	done     chan struct{} // closed when the delivery goroutine exits
	started  bool
}

type delivery struct {
	at     time.Time
	frame  transport.Frame
	closed bool // the peer closed: report Closed(err)
	err    error
}

// Pipe returns two connected ends on clk. Bind each before use.
func Pipe(clk clock.Clock) (a, b *Conn) {
	if clk == nil {
		clk = clock.New()
	}
	a = &Conn{clk: clk, wake: make(chan struct{}, 1), done: make(chan struct{})}
	b = &Conn{clk: clk, wake: make(chan struct{}, 1), done: make(chan struct{})}
	a.peer, b.peer = b, a
	return a, b
}

// Bind starts delivering inbound frames to ev, in order, from one goroutine
// that lives until Close. Frames sent before Bind are queued.
func (c *Conn) Bind(ev transport.Events) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started {
		panic("mem: Conn bound twice")
	}
	c.started = true
	c.ev = ev
	go c.deliver()
}

// Send queues f for the peer, after this end's delay; a dropping end
// discards it silently. Payloads over transport.MaxControlPayload fail with
// transport.ErrPayloadTooLarge.
func (c *Conn) Send(_ context.Context, f transport.Frame) error {
	if len(f.Payload) > transport.MaxControlPayload && f.Kind != transport.Data {
		return transport.ErrPayloadTooLarge
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return transport.ErrClosed
	}
	if int(f.Kind) < len(c.sent) {
		c.sent[f.Kind]++
	}
	drop, delay := c.drop, c.delay
	c.mu.Unlock()
	if drop {
		return nil
	}
	f.Payload = append([]byte(nil), f.Payload...)
	c.peer.push(delivery{at: c.clk.Now().Add(delay), frame: f})
	return nil
}

// SendData sends an application message: evidence of life for the peer.
func (c *Conn) SendData() error {
	return c.Send(context.Background(), transport.Frame{Kind: transport.Data})
}

// Sent returns how many frames of kind k this end has sent (dropped ones too).
func (c *Conn) Sent(k transport.FrameKind) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if int(k) < len(c.sent) {
		return c.sent[k]
	}
	return 0
}

// Close closes this end and tells the peer (unless this end drops its
// traffic: a cut link carries no close either). It waits for this end's
// delivery goroutine to exit, so it must not be called from inside the
// Events callbacks of this same end.
func (c *Conn) Close(reason error) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.closeErr = reason
	started, drop := c.started, c.drop
	c.mu.Unlock()
	c.signal()
	if !drop {
		c.peer.push(delivery{at: c.clk.Now(), closed: true, err: reason})
	}
	if started {
		<-c.done
	}
	return nil
}

// SetDrop makes this end's outbound traffic vanish (true) or flow again.
// Dropping on one end only is a half-open link.
func (c *Conn) SetDrop(drop bool) {
	c.mu.Lock()
	c.drop = drop
	c.mu.Unlock()
}

// SetDelay adds d of latency to this end's outbound frames.
func (c *Conn) SetDelay(d time.Duration) {
	c.mu.Lock()
	c.delay = d
	c.mu.Unlock()
}

// Cut silently drops traffic both ways: a partition, with no close on either
// side.
func (c *Conn) Cut() {
	c.SetDrop(true)
	c.peer.SetDrop(true)
}

func (c *Conn) push(d delivery) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.queue = append(c.queue, d)
	c.mu.Unlock()
	c.signal()
}

func (c *Conn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// deliver hands queued frames to the bound Events in order, each no earlier
// than its delivery time.
func (c *Conn) deliver() {
	defer close(c.done)
	var timer *clock.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return
		}
		var next *delivery
		if len(c.queue) > 0 {
			next = &c.queue[0]
		}
		var wait time.Duration
		if next != nil {
			wait = next.at.Sub(c.clk.Now())
			if wait <= 0 {
				d := *next
				c.queue[0] = delivery{}
				c.queue = c.queue[1:]
				ev := c.ev
				c.mu.Unlock()
				if d.closed {
					ev.Closed(d.err)
				} else {
					ev.Frame(d.frame)
				}
				continue
			}
		}
		c.mu.Unlock()
		var tc <-chan time.Time
		if next != nil {
			if timer == nil {
				timer = c.clk.Timer(wait)
			} else {
				timer.Reset(wait)
			}
			tc = timer.C
		}
		select {
		case <-c.wake:
		case <-tc:
		}
	}
}

// Listener hands out in-memory connections: Dial makes a pair, gives the
// client end to the dialler and the server end to the accept function.
// It implements transport.Dialer.
type Listener struct {
	clk    clock.Clock
	mu     sync.Mutex
	accept func(server *Conn)
	down   bool
	conns  []*Conn // server ends, for Crash
}

// Listen returns a Listener that passes each server end to accept, which must
// Bind it (or Close it).
func Listen(clk clock.Clock, accept func(server *Conn)) *Listener {
	if clk == nil {
		clk = clock.New()
	}
	return &Listener{clk: clk, accept: accept}
}

// Dial connects a new pair, binds the client end to ev and returns it, or
// fails with ErrRefused while the listener is down.
func (l *Listener) Dial(ctx context.Context, ev transport.Events) (transport.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l.mu.Lock()
	if l.down {
		l.mu.Unlock()
		return nil, ErrRefused
	}
	client, server := Pipe(l.clk)
	l.conns = append(l.conns, server)
	accept := l.accept
	l.mu.Unlock()
	client.Bind(ev)
	accept(server)
	return client, nil
}

// SetDown refuses (true) or accepts (false) new dials.
func (l *Listener) SetDown(down bool) {
	l.mu.Lock()
	l.down = down
	l.mu.Unlock()
}

// Crash takes the listener down and closes every server end it handed out:
// a server restart as the clients see it.
func (l *Listener) Crash(reason error) {
	l.mu.Lock()
	l.down = true
	conns := l.conns
	l.conns = nil
	l.mu.Unlock()
	for _, c := range conns {
		_ = c.Close(reason)
	}
}
