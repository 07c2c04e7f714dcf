// Package faultproxy is a TCP proxy on loopback that puts link faults
// between a client and a server, for tests with real sockets: latency, a
// link that stops carrying data while the connections stay open (half-open),
// connection resets, a narrow link, and writes cut into small delayed
// pieces.
//
// A fault applies to both directions, to the connections already open and
// to new ones, at once: data held by a delay is let go by Clear or
// measured again by the next Set. Data is never reordered.
//
//	p, err := faultproxy.New("127.0.0.1:6379")
//	...
//	defer p.Close()
//	dial(p.Addr())                       // instead of the server's address
//	p.Set(faultproxy.Latency{Delay: 100 * time.Millisecond})
//	p.Set(faultproxy.Blackhole{})        // the peer goes silent
//	p.Clear()
package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// A Fault is what the proxy does to the data it carries: Latency,
// Blackhole, Reset, Bandwidth or Slicer.
type Fault interface {
	check() error
}

// Latency holds each piece of data for Delay, plus or minus up to Jitter
// drawn uniformly, from when the proxy read it; data keeps its order.
type Latency struct {
	Delay, Jitter time.Duration
}

// Blackhole drops all data both ways and keeps the connections open, even
// when one end closes (its close is held until Clear): a half-open link, as
// after a NAT mapping expired or the peer vanished.
type Blackhole struct{}

// Reset resets every connection (a TCP RST both ways) and each new one
// while it is set: a peer that refuses the link.
type Reset struct{}

// Bandwidth carries at most BytesPerSecond each way on each connection.
type Bandwidth struct {
	BytesPerSecond int
}

// Slicer cuts each write into pieces of Size bytes, plus or minus up to
// Variation, with Delay after each piece: a link that delivers a message a
// few bytes at a time.
type Slicer struct {
	Size, Variation int
	Delay           time.Duration
}

// ErrInvalidFault is returned, wrapped, by Set for a fault whose values
// make no sense (a negative delay, no bandwidth, empty pieces).
var ErrInvalidFault = errors.New("faultproxy: invalid fault")

// ErrClosed is returned by Set after Close.
var ErrClosed = errors.New("faultproxy: closed")

func (f Latency) check() error {
	if f.Delay < 0 || f.Jitter < 0 {
		return fmt.Errorf("%w: latency %v ± %v is negative", ErrInvalidFault, f.Delay, f.Jitter)
	}
	return nil
}

func (Blackhole) check() error { return nil }
func (Reset) check() error     { return nil }

func (f Bandwidth) check() error {
	if f.BytesPerSecond <= 0 {
		return fmt.Errorf("%w: bandwidth %d B/s, want > 0", ErrInvalidFault, f.BytesPerSecond)
	}
	return nil
}

func (f Slicer) check() error {
	if f.Size <= 0 || f.Variation < 0 || f.Variation >= f.Size || f.Delay < 0 {
		return fmt.Errorf("%w: slices of %d ± %d bytes every %v, want size > variation ≥ 0 and delay ≥ 0", ErrInvalidFault, f.Size, f.Variation, f.Delay)
	}
	return nil
}

// dialTimeout bounds the proxy's dial of the upstream for each client.
const dialTimeout = 5 * time.Second

// Proxy listens on 127.0.0.1 and relays each connection to its upstream
// through the fault set last.
type Proxy struct {
	upstream string
	ln       net.Listener
	done     chan struct{}
	ctx      context.Context // cancelled by Close: ends dials in progress
	stop     context.CancelFunc
	wg       sync.WaitGroup

	mu    sync.Mutex
	fault Fault
	// changed is closed and replaced at each Set and Clear, to wake the
	// pipes that wait under the fault before.
	changed chan struct{}
	links   map[*link]struct{}
	closed  bool
}

// New starts a proxy on 127.0.0.1 (a port of the system's choice) in front
// of upstream, a host:port. It carries data unharmed until Set.
func New(upstream string) (*Proxy, error) {
	if _, _, err := net.SplitHostPort(upstream); err != nil {
		return nil, fmt.Errorf("faultproxy: upstream %q: %w", upstream, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	p := &Proxy{upstream: upstream, ln: ln, done: make(chan struct{}), changed: make(chan struct{}), links: map[*link]struct{}{}}
	p.ctx, p.stop = context.WithCancel(context.Background())
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's host:port, to dial instead of the upstream's.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Set makes f the proxy's fault, in place of the one before. Setting Reset
// resets every open connection at once.
func (p *Proxy) Set(f Fault) error {
	if f == nil {
		return fmt.Errorf("%w: nil (Clear heals the link)", ErrInvalidFault)
	}
	if err := f.check(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	p.setLocked(f)
	if _, ok := f.(Reset); ok {
		for l := range p.links {
			l.close(true)
		}
	}
	return nil
}

// Clear heals the link: data flows unharmed again. Data a Blackhole
// dropped stays lost.
func (p *Proxy) Clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.setLocked(nil)
}

func (p *Proxy) setLocked(f Fault) {
	p.fault = f
	close(p.changed)
	p.changed = make(chan struct{})
}

// current returns the fault in force and a channel closed when it changes.
func (p *Proxy) current() (Fault, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fault, p.changed
}

// Close stops the proxy, closes every connection through it and returns
// once all of its goroutines have ended.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.done)
	p.stop()
	err := p.ln.Close()
	for l := range p.links {
		l.close(false)
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed; Accept on loopback fails for no other reason here
		}
		p.wg.Add(1)
		go p.relay(c)
	}
}

// relay dials the upstream for client c and carries data both ways until
// either side ends or the link is reset.
func (p *Proxy) relay(c net.Conn) {
	defer p.wg.Done()
	if f, _ := p.current(); f == (Reset{}) {
		reset(c)
		return
	}
	ctx, cancel := context.WithTimeout(p.ctx, dialTimeout)
	d := net.Dialer{}
	s, err := d.DialContext(ctx, "tcp", p.upstream)
	cancel()
	if err != nil {
		// The upstream refused or the proxy closed: the client's connection
		// ends as soon as it was accepted.
		c.Close()
		return
	}
	l := &link{client: c, server: s}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		l.close(false)
		return
	}
	p.links[l] = struct{}{}
	if p.fault == (Reset{}) { // set while the upstream was being dialled
		l.close(true)
	}
	p.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pipe(l, c, s) }()
	go func() { defer wg.Done(); p.pipe(l, s, c) }()
	wg.Wait()
	p.mu.Lock()
	delete(p.links, l)
	p.mu.Unlock()
}

// link is one client's connection and the proxy's to the upstream.
type link struct {
	client, server net.Conn
	once           sync.Once
}

// close ends both connections, with a reset when rst is set.
func (l *link) close(rst bool) {
	l.once.Do(func() {
		if rst {
			reset(l.client)
			reset(l.server)
			return
		}
		l.client.Close()
		l.server.Close()
	})
}

// reset closes c with a TCP RST rather than a FIN.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}

// chunk is data read at a time.
type chunk struct {
	data []byte
	at   time.Time
}

// pipe carries src to dst: one goroutine reads, stamping each chunk with
// when it came, and this one writes it through the fault in force. When
// either side ends, the link closes.
func (p *Proxy) pipe(l *link, src, dst net.Conn) {
	chunks := make(chan chunk, 16)
	go func() {
		defer close(chunks)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				chunks <- chunk{buf[:n], time.Now()}
			}
			if err != nil {
				return
			}
		}
	}()
	// Once the writer stops, close the link, which ends the reader's
	// Read, and drain so the reader is never left blocked on the channel.
	defer func() {
		l.close(false)
		for range chunks {
		}
	}()
	for ch := range chunks {
		if !p.write(l, dst, ch) {
			return
		}
	}
	// src ended. Under a blackhole its close, like its data, does not get
	// through until the fault changes.
	for {
		f, changed := p.current()
		if f != (Blackhole{}) {
			return
		}
		select {
		case <-changed:
		case <-p.done:
			return
		}
	}
}

// write puts ch on dst through the fault in force, taken again whenever
// the fault changes while data waits; false when the link is over.
func (p *Proxy) write(l *link, dst net.Conn, ch chunk) bool {
	data := ch.data
	for len(data) > 0 {
		f, changed := p.current()
		var n int
		var d time.Duration
		switch f := f.(type) {
		case nil:
			return writeAll(dst, data)
		case Blackhole:
			return true
		case Reset:
			l.close(true)
			return false
		case Latency:
			// The whole chunk, once it is Delay ± Jitter old.
			d = f.Delay
			if f.Jitter > 0 {
				d += time.Duration(rand.Int64N(int64(2*f.Jitter)+1)) - f.Jitter
			}
			n, d = len(data), time.Until(ch.at.Add(d))
		case Bandwidth:
			// A tenth of a second's worth, after its time.
			n = min(max(1, f.BytesPerSecond/10), len(data))
			d = time.Duration(n) * time.Second / time.Duration(f.BytesPerSecond)
		case Slicer:
			// A piece now, then the pause.
			n = f.Size
			if f.Variation > 0 {
				n += rand.IntN(2*f.Variation+1) - f.Variation
			}
			n = min(n, len(data))
			if !writeAll(dst, data[:n]) {
				return false
			}
			data = data[n:]
			if p.wait(f.Delay, changed) == closed {
				return false
			}
			continue
		default:
			return false // no other Fault: check is unexported
		}
		switch p.wait(d, changed) {
		case closed:
			return false
		case faultChanged:
			continue
		}
		if !writeAll(dst, data[:n]) {
			return false
		}
		data = data[n:]
	}
	return true
}

type waited int

const (
	elapsed waited = iota
	faultChanged
	closed
)

// wait returns after d, or at once when the fault changes (changed) or the
// proxy closes.
func (p *Proxy) wait(d time.Duration, changed <-chan struct{}) waited {
	if d <= 0 {
		return elapsed
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return elapsed
	case <-changed:
		return faultChanged
	case <-p.done:
		return closed
	}
}

func writeAll(c net.Conn, b []byte) bool {
	_, err := c.Write(b)
	return err == nil
}
