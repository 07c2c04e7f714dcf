package nbiows

import (
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heartbeat-go/heartbeat/transport/conformance"
)

// readClose reads raw server frames from c until a close frame, and
// returns its code; 0 if the socket ended first.
func readClose(t *testing.T, c net.Conn) uint16 {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(conformance.Wait))
	var hdr [2]byte
	for {
		if _, err := readFull(c, hdr[:]); err != nil {
			return 0
		}
		n := int(hdr[1] & 0x7f) // server frames: unmasked, and the ones here are short
		switch n {
		case 126:
			var ext [2]byte
			if _, err := readFull(c, ext[:]); err != nil {
				return 0
			}
			n = int(binary.BigEndian.Uint16(ext[:]))
		case 127:
			var ext [8]byte
			if _, err := readFull(c, ext[:]); err != nil {
				return 0
			}
			n = int(binary.BigEndian.Uint64(ext[:]))
		}
		p := make([]byte, n)
		if _, err := readFull(c, p); err != nil {
			return 0
		}
		if hdr[0]&0x0f == 0x8 && n >= 2 {
			return binary.BigEndian.Uint16(p)
		}
	}
}

func readFull(c net.Conn, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		k, err := c.Read(p[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// Every frame RFC 6455 forbids is refused from its header, before nbio
// buffers anything of it, with the close code the RFC names, well within
// 100 ms, and the connection ends with the guard's error.
func TestGuardRefusesIllegalFrames(t *testing.T) {
	s := newServer(t, ServerConfig{})
	url, accepted := conformance.Serve(t, func(w http.ResponseWriter, r *http.Request) (*Conn, error) {
		return s.Upgrade(w, r, Options{})
	})
	masked := func(b0, b1 byte, ext ...byte) []byte {
		return append(append([]byte{b0, 0x80 | b1}, ext...), 1, 2, 3, 4)
	}
	huge := binary.BigEndian.AppendUint64(nil, 1<<63|1<<20)
	for _, c := range []struct {
		name  string
		frame []byte
		code  uint16
		err   error
	}{
		{"64-bit length, high bit set", masked(0x82, 127, huge...), closeProtocolError, ErrProtocol},
		{"reserved bit 1", masked(0x80|0x40|0x2, 0), closeProtocolError, ErrProtocol},
		{"unknown opcode 3", masked(0x83, 0), closeProtocolError, ErrProtocol},
		{"unmasked", []byte{0x82, 0}, closeProtocolError, ErrProtocol},
		{"fragmented ping", masked(0x09, 0), closeProtocolError, ErrProtocol},
		{"ping of 126 bytes", masked(0x89, 126, 0, 126), closeProtocolError, ErrProtocol},
		{"continuation first", masked(0x80, 0), closeProtocolError, ErrProtocol},
		{"new message inside a fragmented one", append(masked(0x02, 0), masked(0x82, 0)...), closeProtocolError, ErrProtocol},
		{"one frame over the read limit", masked(0x82, 127, binary.BigEndian.AppendUint64(nil, DefaultReadLimit+1)...), closeMessageTooBig, ErrMessageTooBig},
		{"fragments over the read limit", append(masked(0x02, 127, binary.BigEndian.AppendUint64(nil, DefaultReadLimit)...), make([]byte, DefaultReadLimit)...), closeMessageTooBig, ErrMessageTooBig},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn := rawClient(t, url)
			sc := accepted()
			rec := conformance.NewRecorder()
			if err := sc.Bind(rec); err != nil {
				t.Fatal(err)
			}
			frame := c.frame
			if c.code == closeMessageTooBig && len(frame) > 1<<10 { // then one more fragment's header
				frame = append(frame, masked(0x80, 1)...)
			}
			start := time.Now()
			if _, err := conn.Write(frame); err != nil {
				t.Fatal(err)
			}
			code := readClose(t, conn)
			took := time.Since(start)
			if code != c.code {
				t.Errorf("read close %d, want %d", code, c.code)
			}
			if took > 100*time.Millisecond && !raceEnabled {
				t.Errorf("the close came %v after the frame, want within 100 ms", took)
			}
			_ = conn.Close() // the guard drops what follows, the close reply too: end it now
			if err := rec.WaitClosed(t); !errors.Is(err, c.err) {
				t.Errorf("the connection ended with %v, want %v", err, c.err)
			}
		})
	}
}

// Eight peers that each announce a frame of 2^63 + 1 MiB bytes (read by
// nbio v1.6.8 as a negative length) and then stream 8 MiB each buffer
// nothing: the heap stays within a few MiB, where nbio alone would hold
// up to its 64 MiB engine limit per connection.
func TestGuardHighBitLengthCostsNothing(t *testing.T) {
	s := newServer(t, ServerConfig{})
	url, accepted := conformance.Serve(t, func(w http.ResponseWriter, r *http.Request) (*Conn, error) {
		return s.Upgrade(w, r, Options{})
	})
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	head := append([]byte{0x82, 0x80 | 127}, binary.BigEndian.AppendUint64(nil, 1<<63|1<<20)...)
	head = append(head, 1, 2, 3, 4)
	junk := make([]byte, 64<<10)
	var codes []uint16
	for range 8 {
		conn := rawClient(t, url)
		sc := accepted()
		if err := sc.Bind(conformance.NewRecorder()); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetWriteDeadline(time.Now().Add(conformance.Wait))
		if _, err := conn.Write(head); err != nil {
			t.Fatal(err)
		}
		for range 128 { // 8 MiB, or until the server has closed
			if _, err := conn.Write(junk); err != nil {
				break
			}
		}
		codes = append(codes, readClose(t, conn))
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	grew := int64(after.HeapInuse) - int64(before.HeapInuse)
	t.Logf("8 high-bit frames: heap in use grew %.1f MiB; close codes %v", float64(grew)/(1<<20), codes)
	if grew > 16<<20 {
		t.Errorf("heap in use grew %.1f MiB, want almost nothing", float64(grew)/(1<<20))
	}
	for i, code := range codes {
		if code != closeProtocolError {
			t.Errorf("peer %d read close %d, want 1002", i, code)
		}
	}
}

// A peer that sends faster than OnData returns gets at most MaxReadQueue
// bytes queued for the application: the message past it closes the
// connection with 1008 naming the read queue, and the connection ends with
// ErrReadQueueFull. OnData is held until the peer has its close frame.
func TestReadQueueBound(t *testing.T) {
	s := newServer(t, ServerConfig{})
	release := make(chan struct{})
	var got atomic.Int64
	sc, client := pair(t, s, nil, Options{OnData: func(_ int, data []byte) {
		<-release
		got.Add(int64(len(data)))
	}}, nil)
	rec := conformance.NewRecorder()
	if err := sc.Bind(rec); err != nil {
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
	msg := make([]byte, 16<<10)
	_ = client.SetWriteDeadline(time.Now().Add(conformance.Wait))
	sent := 0
	var werr error
	for ; sent < 1024 && werr == nil; sent++ { // 16 MiB at most, 8 times the bound
		werr = client.WriteMessage(websocket.BinaryMessage, msg)
		select {
		case err := <-closed:
			closed <- err
			werr = err
		default:
		}
	}
	err := <-closed
	close(release)
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != 1008 || !strings.Contains(ce.Text, "read queue full") {
		t.Errorf("after %d messages the peer read %v, want close 1008 'read queue full'", sent, err)
	}
	if err := rec.WaitClosed(t); !errors.Is(err, ErrReadQueueFull) {
		t.Errorf("the connection ended with %v, want ErrReadQueueFull", err)
	}
	if q := sc.inbound.Load(); q > DefaultMaxReadQueue {
		t.Errorf("%d bytes counted in the read queue, limit %d", q, DefaultMaxReadQueue)
	}
	t.Logf("the peer sent %d messages of 16 KiB before its close; OnData took %d KiB", sent, got.Load()>>10)
}
