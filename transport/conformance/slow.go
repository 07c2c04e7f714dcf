package conformance

import (
	"errors"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// SlowConsumerHeap is how much a server's heap may grow while one peer
// floods an application that takes none of its messages.
const SlowConsumerHeap = 64 << 20

// SlowConsumer describes an adapter's server for RunSlowConsumer.
type SlowConsumer struct {
	// Serve starts a server on loopback whose application hands every
	// inbound message to handle (which blocks as long as the test likes),
	// and returns its ws:// URL and a func that returns the server side of
	// the next connection, unbound (only Conn and Bind are used). Serve
	// cleans up with t.Cleanup.
	Serve func(t *testing.T, handle func(data []byte)) (url string, accepted func() End)
	// Closes: the adapter bounds a flood by closing the connection with
	// 1008, where it cannot stop reading one connection (nbio); otherwise
	// it stops reading and TCP holds the peer back.
	Closes bool
}

// RunSlowConsumer floods an application that takes no message until
// released: a client sends 16 KiB messages as fast as TCP lets it, up to
// 8,192 of them (128 MiB). The server's heap must grow by at most
// SlowConsumerHeap; the flood must end by TCP holding the client back (its
// writes run into their deadline) or, if s.Closes, by close 1008; once
// released, the application gets messages again, and the connection ends
// when the client goes.
func RunSlowConsumer(t *testing.T, s SlowConsumer) {
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock)
	taken := make(chan struct{}, 1)
	url, accepted := s.Serve(t, func([]byte) {
		<-release
		select {
		case taken <- struct{}{}:
		default:
		}
	})
	d := websocket.Dialer{NetDialContext: SmallBufferDial(256 << 10)}
	client, _, err := d.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server := accepted()
	rec := NewRecorder()
	if err := server.Bind(rec); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() {
		for {
			if _, _, err := client.ReadMessage(); err != nil {
				closed <- err
				return
			}
		}
	}()
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	msg := make([]byte, 16<<10)
	_ = client.SetWriteDeadline(time.Now().Add(3 * time.Second))
	sent := 0
	var werr error
flood:
	for ; sent < 8192; sent++ {
		if werr = client.WriteMessage(websocket.BinaryMessage, msg); werr != nil {
			break
		}
		select {
		case err := <-closed:
			closed <- err
			break flood
		default:
		}
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	grew := int64(after.HeapInuse) - int64(before.HeapInuse)
	t.Logf("%d messages of 16 KiB sent before the flood ended (%v); the heap grew by %.1f MiB", sent, werr, float64(grew)/(1<<20))
	if grew > SlowConsumerHeap {
		t.Errorf("the heap grew by %.1f MiB, over %d MiB", float64(grew)/(1<<20), SlowConsumerHeap>>20)
	}
	if sent == 8192 {
		t.Fatal("all 128 MiB were taken: nothing held the flood back")
	}
	if s.Closes {
		var ce *websocket.CloseError
		select {
		case err := <-closed:
			if !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation {
				t.Errorf("the client read %v, want close 1008", err)
			}
		case <-time.After(Wait):
			t.Error("the flooding client was not closed")
		}
		unblock()
		rec.WaitClosed(t)
		return
	}
	var ne net.Error
	if !errors.As(werr, &ne) || !ne.Timeout() {
		t.Errorf("the flood ended with %v, want the client's write deadline (TCP holding it back)", werr)
	}
	unblock()
	select {
	case <-taken:
	case <-time.After(Wait):
		t.Fatal("released, the application got no message")
	}
	_ = client.Close()
	rec.WaitClosed(t)
}
