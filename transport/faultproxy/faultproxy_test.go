package faultproxy_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/heartbeat-go/heartbeat/transport/faultproxy"
)

// Every goroutine of a proxy ends with its Close.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echo serves on loopback, writing back what it reads, until the test ends.
func echo(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

// through starts a proxy before an echo server and dials it.
func through(t *testing.T) (*faultproxy.Proxy, net.Conn) {
	t.Helper()
	p, err := faultproxy.New(echo(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p, dial(t, p)
}

func dial(t *testing.T, p *faultproxy.Proxy) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes msg and reads as many bytes back, within 10 s.
func roundTrip(c net.Conn, msg []byte) ([]byte, error) {
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return nil, err
	}
	if _, err := c.Write(msg); err != nil {
		return nil, err
	}
	got := make([]byte, len(msg))
	_, err := io.ReadFull(c, got)
	return got, err
}

func set(t *testing.T, p *faultproxy.Proxy, f faultproxy.Fault) {
	t.Helper()
	if err := p.Set(f); err != nil {
		t.Fatal(err)
	}
}

func TestCarriesData(t *testing.T) {
	_, c := through(t)
	msg := bytes.Repeat([]byte("heartbeat "), 10_000)
	got, err := roundTrip(c, msg)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("round trip: %d bytes back, err %v", len(got), err)
	}
}

// Each way is held for the delay, ± the jitter: a round trip takes at
// least twice the delay less the jitter.
func TestLatency(t *testing.T) {
	p, c := through(t)
	const delay = 100 * time.Millisecond
	set(t, p, faultproxy.Latency{Delay: delay, Jitter: delay / 2})
	start := time.Now()
	got, err := roundTrip(c, []byte("ping"))
	if err != nil || string(got) != "ping" {
		t.Fatalf("round trip: %q, %v", got, err)
	}
	if rtt := time.Since(start); rtt < 2*(delay-delay/2) {
		t.Errorf("round trip %v under a latency of %v ± %v each way", rtt, delay, delay/2)
	}
}

// A blackhole drops data and keeps the connection; Clear brings it back,
// without what was dropped.
func TestBlackhole(t *testing.T) {
	p, c := through(t)
	set(t, p, faultproxy.Blackhole{})
	if _, err := c.Write([]byte("lost")); err != nil {
		t.Fatal(err)
	}
	if err := c.SetReadDeadline(time.Now().Add(300 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Read(make([]byte, 8)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read through a blackhole: %d bytes, %v; want the deadline", n, err)
	}
	p.Clear()
	got, err := roundTrip(c, []byte("back"))
	if err != nil || string(got) != "back" {
		t.Fatalf("after Clear: %q, %v; want only the new data", got, err)
	}
}

// Reset cuts the open connections with an RST and every new one while it
// is set; after Clear a new connection works.
func TestReset(t *testing.T) {
	p, c := through(t)
	if _, err := roundTrip(c, []byte("up")); err != nil {
		t.Fatal(err)
	}
	set(t, p, faultproxy.Reset{})
	if _, err := roundTrip(c, []byte("x")); !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
		t.Errorf("open connection after Reset: %v, want a reset", err)
	}
	if _, err := roundTrip(dial(t, p), []byte("x")); !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
		t.Errorf("new connection while Reset is set: %v, want a reset", err)
	}
	p.Clear()
	if got, err := roundTrip(dial(t, p), []byte("again")); err != nil || string(got) != "again" {
		t.Errorf("new connection after Clear: %q, %v", got, err)
	}
}

// A narrow link carries n bytes each way in at least n / rate.
func TestBandwidth(t *testing.T) {
	p, c := through(t)
	const rate, n = 20_000, 4_000
	set(t, p, faultproxy.Bandwidth{BytesPerSecond: rate})
	msg := bytes.Repeat([]byte{'b'}, n)
	start := time.Now()
	got, err := roundTrip(c, msg)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("round trip: %d bytes, %v", len(got), err)
	}
	if d, least := time.Since(start), time.Duration(n)*time.Second/rate; d < least {
		t.Errorf("%d bytes at %d B/s in %v, want at least %v", n, rate, d, least)
	}
}

// A slicer keeps the bytes and their order, with a pause after each piece.
func TestSlicer(t *testing.T) {
	p, c := through(t)
	f := faultproxy.Slicer{Size: 4, Variation: 2, Delay: 10 * time.Millisecond}
	set(t, p, f)
	msg := []byte("0123456789abcdefghijklmnopqrstuvwxyz")
	start := time.Now()
	got, err := roundTrip(c, msg)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("round trip: %q, %v", got, err)
	}
	pieces := (len(msg) + f.Size + f.Variation - 1) / (f.Size + f.Variation) // the fewest
	if d, least := time.Since(start), time.Duration(pieces)*f.Delay; d < least {
		t.Errorf("%d bytes in pieces of %d ± %d after %v each: %v, want at least %v", len(msg), f.Size, f.Variation, f.Delay, d, least)
	}
}

func TestInvalid(t *testing.T) {
	p, _ := through(t)
	for _, f := range []faultproxy.Fault{
		nil,
		faultproxy.Latency{Delay: -time.Second},
		faultproxy.Latency{Jitter: -time.Second},
		faultproxy.Bandwidth{},
		faultproxy.Slicer{},
		faultproxy.Slicer{Size: 4, Variation: 4},
		faultproxy.Slicer{Size: 4, Delay: -1},
	} {
		if err := p.Set(f); !errors.Is(err, faultproxy.ErrInvalidFault) {
			t.Errorf("Set(%#v) = %v, want ErrInvalidFault", f, err)
		}
	}
	if _, err := faultproxy.New("no port"); err == nil {
		t.Error("New accepted an upstream without a port")
	}
}

// Close ends every connection through the proxy (the client reads EOF or a
// reset) and refuses later faults; TestMain checks no goroutine is left.
func TestClose(t *testing.T) {
	p, c := through(t)
	set(t, p, faultproxy.Latency{Delay: time.Hour}) // a pipe waits in it
	if _, err := c.Write([]byte("held")); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 4)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read after Close: %v, want the connection ended", err)
	}
	if err := p.Set(faultproxy.Blackhole{}); !errors.Is(err, faultproxy.ErrClosed) {
		t.Errorf("Set after Close = %v, want ErrClosed", err)
	}
}

// Clear lets go at once of data a delay holds.
func TestClearReleasesHeldData(t *testing.T) {
	p, c := through(t)
	set(t, p, faultproxy.Latency{Delay: time.Hour})
	if _, err := c.Write([]byte("held")); err != nil {
		t.Fatal(err)
	}
	p.Clear()
	got := make([]byte, 4)
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "held" {
		t.Fatalf("after Clear: %q, %v; want the held data at once", got, err)
	}
}

// A blackhole holds an end's close as it holds its data: the other end
// sees the connection open until Clear, then its end.
func TestBlackholeHoldsClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if s, err := ln.Accept(); err == nil {
			accepted <- s
		}
	}()
	p, err := faultproxy.New(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c := dial(t, p)
	var s net.Conn
	select {
	case s = <-accepted:
	case <-time.After(10 * time.Second):
		t.Fatal("the proxy did not dial the server")
	}
	set(t, p, faultproxy.Blackhole{})
	s.Close() // the server goes away; the link is half-open
	if err := c.SetReadDeadline(time.Now().Add(300 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read through a blackhole after the server closed: %v, want the connection still open", err)
	}
	p.Clear()
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read after Clear: %v, want the server's close", err)
	}
}
