// Package conformance is one test suite every transport adapter must pass:
// the contract of transport.Conn and transport.Events, checked the same way
// against the gorilla and coder adapters, across them, and against the
// in-memory pipe.
//
// An adapter's test describes how to make a connected pair and calls Run:
//
//	func TestConformance(t *testing.T) {
//		conformance.Run(t, conformance.Harness{
//			Name:    "gorilla",
//			NewPair: newGorillaPair, // returns two End values
//		})
//	}
//
// RunSlowConsumer checks an adapter's server against a peer that floods an
// application that reads nothing: the same heap bound on every adapter.
package conformance

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/transport"
)

// Wait bounds every wait in the suite: a conforming transport on loopback
// answers in milliseconds, so reaching it means the contract is broken.
const Wait = 5 * time.Second

// End is one end of a connected pair, as the suite drives it.
type End struct {
	// Conn is the end's transport.Conn.
	Conn transport.Conn
	// Bind starts reporting the end's inbound frames to ev.
	Bind func(ev transport.Events) error
	// SendData sends one application message to the peer.
	SendData func(ctx context.Context) error
	// Abort ends the connection abruptly, as a crash would: no close
	// handshake.
	Abort func()

	// PingsCarrySeq: the peer decodes this end's ping Seq (false for an end
	// whose library chooses its own ping payload).
	PingsCarrySeq bool
	// PingsCarryAdvice: this end's pings carry Frame.ReconnectWindow.
	PingsCarryAdvice bool
	// SendsPongs: Send(Pong) writes a pong (false for an end whose library
	// answers pings itself and cannot send a pong on request).
	SendsPongs bool
	// ReportsCleanClose: when the peer closes cleanly (Close(fsm.ErrClosed),
	// a WebSocket close 1000), this end reports Closed with an error that
	// wraps fsm.ErrPeerLeft, so the heartbeat sees an end, not a death.
	ReportsCleanClose bool
	// CoalescesHeartbeats: a Send that finds an application write holding
	// the writer keeps its frame for when the write ends, superseding an
	// older kept frame of its kind (the heartbeat needs only its latest
	// ping and the pong of the peer's latest), so concurrent Sends may
	// deliver fewer frames; the latest always arrives.
	CoalescesHeartbeats bool
}

// Harness describes the pairs the suite runs on.
type Harness struct {
	Name string
	// NewPair returns a fresh connected pair, unbound. The harness cleans
	// up with t.Cleanup; the suite closes both Conns itself.
	NewPair func(t *testing.T) (a, b End)
}

// Run runs the suite: every test on a fresh pair, and the directional ones
// in both directions.
func Run(t *testing.T, h Harness) {
	tests := []struct {
		name string
		f    func(t *testing.T, a, b End, ra, rb *Recorder)
	}{
		{"PingPong", testPingPong},
		{"UnsolicitedPong", testUnsolicitedPong},
		{"DataIsEvidence", testData},
		{"Advice", testAdvice},
		{"PayloadLimit", testPayloadLimit},
		{"Close", testClose},
		{"Abort", testAbort},
		{"CleanClose", testCleanClose},
		{"ConcurrentSends", testConcurrent},
	}
	for _, tc := range tests {
		for _, dir := range []string{"a→b", "b→a"} {
			t.Run(fmt.Sprintf("%s/%s/%s", h.Name, tc.name, dir), func(t *testing.T) {
				a, b := h.NewPair(t)
				if dir == "b→a" {
					a, b = b, a
				}
				ra, rb := NewRecorder(), NewRecorder()
				if err := a.Bind(ra); err != nil {
					t.Fatalf("bind a: %v", err)
				}
				if err := b.Bind(rb); err != nil {
					t.Fatalf("bind b: %v", err)
				}
				defer func() {
					_ = a.Conn.Close(nil)
					_ = b.Conn.Close(nil)
				}()
				tc.f(t, a, b, ra, rb)
			})
		}
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	t.Cleanup(cancel)
	return ctx
}

// pong answers an inbound ping the way the heartbeat driver does: echo its
// payload (and, for a transport that carries Seq directly, its Seq).
func pong(ping transport.Frame) transport.Frame {
	return transport.Frame{Kind: transport.Pong, Seq: ping.Seq, Payload: ping.Payload}
}

// testPingPong: every ping reaches the peer within the payload limit, and
// the pong answering it carries the ping's Seq back, in order.
func testPingPong(t *testing.T, a, b End, ra, rb *Recorder) {
	ctx := ctxT(t)
	for seq := uint64(1); seq <= 5; seq++ {
		if err := a.Conn.Send(ctx, transport.Frame{Kind: transport.Ping, Seq: seq}); err != nil {
			t.Fatalf("send ping %d: %v", seq, err)
		}
		in := rb.WaitFrame(t, transport.Ping)
		if len(in.Payload) > transport.MaxControlPayload {
			t.Fatalf("ping payload of %d bytes", len(in.Payload))
		}
		if a.PingsCarrySeq && in.Seq != seq {
			t.Fatalf("ping %d arrived with Seq %d", seq, in.Seq)
		}
		if !a.PingsCarrySeq && in.Seq != 0 && in.Seq != seq {
			t.Fatalf("ping %d arrived with a wrong Seq %d (0 would mean unknown)", seq, in.Seq)
		}
		if err := b.Conn.Send(ctx, pong(in)); err != nil {
			t.Fatalf("send pong %d: %v", seq, err)
		}
		if out := ra.WaitFrame(t, transport.Pong); out.Seq != seq {
			t.Fatalf("pong for ping %d carries Seq %d", seq, out.Seq)
		}
	}
	if n := ra.Count(transport.Pong); n != 5 {
		t.Errorf("%d pongs for 5 pings", n)
	}
}

// testUnsolicitedPong: a pong nobody asked for is still reported (it is
// evidence of life).
func testUnsolicitedPong(t *testing.T, a, b End, ra, rb *Recorder) {
	if !a.SendsPongs {
		t.Skip("this end's library answers pings itself and cannot send a pong on request")
	}
	payload := []byte("unsolicited")
	if err := a.Conn.Send(ctxT(t), transport.Frame{Kind: transport.Pong, Payload: payload}); err != nil {
		t.Fatal(err)
	}
	if f := rb.WaitFrame(t, transport.Pong); f.Seq != 0 {
		t.Errorf("unsolicited pong decoded as Seq %d", f.Seq)
	}
}

// testData: an application message is reported as a Data frame.
func testData(t *testing.T, a, b End, ra, rb *Recorder) {
	for range 3 {
		if err := a.SendData(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		rb.WaitFrame(t, transport.Data)
	}
}

// testAdvice: a ping carrying reconnect-window advice delivers it.
func testAdvice(t *testing.T, a, b End, ra, rb *Recorder) {
	if !a.PingsCarryAdvice {
		t.Skip("this end's pings cannot carry advice")
	}
	const w = 2500 * time.Millisecond
	if err := a.Conn.Send(ctxT(t), transport.Frame{Kind: transport.Ping, Seq: 1, ReconnectWindow: w}); err != nil {
		t.Fatal(err)
	}
	if f := rb.WaitFrame(t, transport.Ping); f.ReconnectWindow != w {
		t.Errorf("advice %v arrived as %v", w, f.ReconnectWindow)
	}
}

// testPayloadLimit: a pong over 125 bytes is refused with
// transport.ErrPayloadTooLarge, and the connection still works.
func testPayloadLimit(t *testing.T, a, b End, ra, rb *Recorder) {
	ctx := ctxT(t)
	big := make([]byte, transport.MaxControlPayload+1)
	if err := a.Conn.Send(ctx, transport.Frame{Kind: transport.Pong, Payload: big}); !errors.Is(err, transport.ErrPayloadTooLarge) {
		t.Fatalf("126-byte pong: %v, want ErrPayloadTooLarge", err)
	}
	if err := a.Conn.Send(ctx, transport.Frame{Kind: transport.Ping, Seq: 9}); err != nil {
		t.Fatalf("ping after a refused pong: %v", err)
	}
	rb.WaitFrame(t, transport.Ping)
}

// testClose: Close tells the peer exactly once, is idempotent, and Send
// afterwards fails with transport.ErrClosed.
func testClose(t *testing.T, a, b End, ra, rb *Recorder) {
	reason := errors.New("conformance: closing")
	if err := a.Conn.Close(reason); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := a.Conn.Close(reason); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	rb.WaitClosed(t)
	if err := a.Conn.Send(ctxT(t), transport.Frame{Kind: transport.Ping, Seq: 1}); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("Send after Close: %v, want ErrClosed", err)
	}
	_ = b.Conn.Close(nil)
	if n := rb.ClosedCount(); n != 1 {
		t.Errorf("peer told %d times of the close", n)
	}
	if n := rb.FramesAfterClosed(); n != 0 {
		t.Errorf("%d frames reported after Closed", n)
	}
}

// testAbort: an abrupt end reaches the peer as Closed with an error, and
// not as the peer leaving.
func testAbort(t *testing.T, a, b End, ra, rb *Recorder) {
	a.Abort()
	err := rb.WaitClosed(t)
	if err == nil {
		t.Error("abrupt end reported as a clean close (nil error)")
	}
	if errors.Is(err, fsm.ErrPeerLeft) {
		t.Errorf("abrupt end reported as the peer leaving: %v", err)
	}
}

// testCleanClose: a user's Close reaches a peer that tells clean closes
// apart as fsm.ErrPeerLeft.
func testCleanClose(t *testing.T, a, b End, ra, rb *Recorder) {
	if !b.ReportsCleanClose {
		t.Skip("this end does not tell a clean close apart")
	}
	if err := a.Conn.Close(fsm.ErrClosed); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := rb.WaitClosed(t); !errors.Is(err, fsm.ErrPeerLeft) {
		t.Errorf("a clean close reached the peer as %v, want fsm.ErrPeerLeft wrapped", err)
	}
}

// testConcurrent: pings and pongs from several goroutines, with data
// alongside, all arrive (run it with -race).
func testConcurrent(t *testing.T, a, b End, ra, rb *Recorder) {
	ctx := ctxT(t)
	const workers, each = 4, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*each*2)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				if err := a.Conn.Send(ctx, transport.Frame{Kind: transport.Ping, Seq: uint64(w*each + i + 1)}); err != nil {
					errs <- err
				}
				if i%3 == 0 {
					if err := a.SendData(ctx); err != nil {
						errs <- err
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	rb.WaitCount(t, transport.Data, workers*4)
	if !a.CoalescesHeartbeats {
		rb.WaitCount(t, transport.Ping, workers*each)
		return
	}
	// Coalesced: some pings arrive, and one sent once the writes are over
	// arrives too.
	const last = workers*each + 1
	if err := a.Conn.Send(ctx, transport.Frame{Kind: transport.Ping, Seq: last}); err != nil {
		t.Fatal(err)
	}
	if a.PingsCarrySeq {
		rb.WaitSeq(t, transport.Ping, last)
	} else {
		rb.WaitCount(t, transport.Ping, 2)
	}
}
