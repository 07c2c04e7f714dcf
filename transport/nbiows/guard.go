package nbiows

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync/atomic"

	"github.com/lesismal/nbio/nbhttp/websocket"
)

// Errors a frame guard closes a connection with.
var (
	// ErrProtocol: the peer sent a frame RFC 6455 forbids (a 64-bit length
	// with its high bit set, reserved bits, an unknown opcode, an unmasked
	// client frame, a fragmented or oversize control frame, a continuation
	// out of place). The connection is closed with 1002.
	ErrProtocol = errors.New("nbiows: protocol error")
	// ErrMessageTooBig: a frame would take its message past the read limit
	// or past maxFragments fragments. The connection is closed with 1009.
	ErrMessageTooBig = errors.New("nbiows: message too big")
)

// maxFragments bounds the frames of one message: a message of empty
// fragments that never ends costs the poller a parse per frame for nothing.
// Go's libraries fragment at their 4 KiB write buffer, so a message of the
// default read limit takes 256.
const maxFragments = 1024

// guard reads each frame's header before nbio buffers the frame, so a
// header nbio would misread (v1.6.8 takes a 64-bit length with the high bit
// set as negative, which passes its message limit, and buffers up to its
// engine's read limit) is refused at once, with the close code RFC 6455
// names, and costs no more memory than the header. It forwards the bytes
// of well-formed frames to nbio's parser unchanged. It is the poller's
// session for the connection (nbhttp.ParserCloser), so it sees every byte,
// TLS or not.
type guard struct {
	// conn is set before the poller can see the guard; atomic because
	// nbio's hand-over is invisible to the race detector.
	conn atomic.Pointer[Conn]

	head      [14]byte // the current frame's header, as far as read
	headLen   int
	skip      uint64 // payload bytes left of the current frame
	inMessage bool   // a fragmented data message is open
	msgLen    uint64 // its payload so far
	frames    int    // its frames so far
	tripped   bool   // refused: what follows is dropped
}

// Parse checks data's frame headers and hands data to nbio's parser.
func (g *guard) Parse(data []byte) error {
	c := g.conn.Load()
	if g.tripped {
		return nil // closing: the close frame is on its way, the rest is noise
	}
	if err := g.scan(c, data); err != nil {
		g.tripped = true
		c.refuse(err)
		return nil
	}
	return c.ws.Parse(data)
}

// UnderlayerConn is the connection nbio's TLS handler decrypts through.
func (g *guard) UnderlayerConn() net.Conn { return g.conn.Load().ws.UnderlayerConn() }

// CloseAndClean releases nbio's parser when the connection ends.
func (g *guard) CloseAndClean(err error) { g.conn.Load().ws.CloseAndClean(err) }

func newGuard(c *Conn) *guard {
	g := &guard{}
	g.conn.Store(c)
	return g
}

// scan walks the frame boundaries in data.
func (g *guard) scan(c *Conn, data []byte) error {
	for len(data) > 0 {
		if g.skip > 0 {
			n := uint64(len(data))
			if n > g.skip {
				n = g.skip
			}
			g.skip -= n
			data = data[n:]
			continue
		}
		n := copy(g.head[g.headLen:], data)
		g.headLen += n
		need := headerLen(g.head[:g.headLen])
		if need < 0 || g.headLen < need {
			data = data[n:] // not all of the header yet
			continue
		}
		data = data[n-(g.headLen-need):] // the header's bytes only
		payload, err := g.check(c, g.head[:need])
		if err != nil {
			return err
		}
		g.headLen, g.skip = 0, payload
	}
	return nil
}

// headerLen is how long the header that starts with h is, or -1 while that
// cannot be told yet.
func headerLen(h []byte) int {
	if len(h) < 2 {
		return -1
	}
	n := 2
	switch h[1] & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if h[1]&0x80 != 0 {
		n += 4
	}
	return n
}

// check judges one complete frame header and returns its payload length.
func (g *guard) check(c *Conn, h []byte) (uint64, error) {
	fin, rsv, op := h[0]&0x80 != 0, h[0]&0x70, websocket.MessageType(h[0]&0x0f)
	var n uint64
	switch l := h[1] & 0x7f; l {
	case 126:
		n = uint64(binary.BigEndian.Uint16(h[2:4]))
	case 127:
		n = binary.BigEndian.Uint64(h[2:10])
		if n>>63 != 0 {
			return 0, fmt.Errorf("%w: a 64-bit frame length with the high bit set", ErrProtocol)
		}
	default:
		n = uint64(l)
	}
	switch {
	case rsv != 0:
		return 0, fmt.Errorf("%w: reserved bits %#x set, no extension agreed", ErrProtocol, rsv>>4)
	case h[1]&0x80 == 0:
		return 0, fmt.Errorf("%w: an unmasked client frame", ErrProtocol)
	}
	switch op {
	case websocket.PingMessage, websocket.PongMessage, websocket.CloseMessage:
		if !fin || n > 125 {
			return 0, fmt.Errorf("%w: a control frame fragmented or over 125 bytes", ErrProtocol)
		}
		return n, nil
	case websocket.FragmentMessage:
		if !g.inMessage {
			return 0, fmt.Errorf("%w: a continuation frame without a message to continue", ErrProtocol)
		}
	case websocket.TextMessage, websocket.BinaryMessage:
		if g.inMessage {
			return 0, fmt.Errorf("%w: a new message inside a fragmented one", ErrProtocol)
		}
		g.msgLen, g.frames = 0, 0
	default:
		return 0, fmt.Errorf("%w: unknown opcode %d", ErrProtocol, op)
	}
	limit := uint64(c.srv.readLimit)
	g.frames++
	switch {
	case n > limit || g.msgLen+n > limit:
		return 0, fmt.Errorf("%w: over the read limit of %d bytes", ErrMessageTooBig, limit)
	case g.frames > maxFragments:
		return 0, fmt.Errorf("%w: over %d fragments", ErrMessageTooBig, maxFragments)
	}
	g.msgLen += n
	g.inMessage = !fin
	return n, nil
}

// refuse closes the connection for a frame the guard refused, on a
// goroutine of its own (Close waits for the peer's close frame, and the
// poller must not).
func (c *Conn) refuse(err error) {
	c.mu.Lock()
	first := c.failed == nil && !c.closed
	if first {
		c.failed = err
	}
	c.mu.Unlock()
	if first {
		go func() { _ = c.Close(err) }()
	}
}
