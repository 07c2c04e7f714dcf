package conformance

import (
	"context"
	"net"
)

// SmallBuffers caps the kernel socket buffers of every connection ln
// accepts at n bytes each way. A test whose peers stop reading then holds
// about n bytes per socket, not the kernel's autotuned maximum (tcp_rmem's
// is 32 MiB on many machines): across test packages run in parallel, the
// latter can exhaust the machine's TCP memory, and the kernel then drops
// unrelated connections, a browser's included.
func SmallBuffers(ln net.Listener, n int) net.Listener { return smallListener{ln, n} }

type smallListener struct {
	net.Listener
	n int
}

func (l smallListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		capBuffers(c, l.n)
	}
	return c, err
}

// SmallBufferDial dials TCP with the socket buffers capped at n bytes each
// way, as SmallBuffers does for a listener (a websocket.Dialer's
// NetDialContext).
func SmallBufferDial(n int) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if err == nil {
			capBuffers(c, n)
		}
		return c, err
	}
}

func capBuffers(c net.Conn, n int) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(n)
		_ = tc.SetWriteBuffer(n)
	}
}
