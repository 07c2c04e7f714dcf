package nbiows

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heartbeat-go/heartbeat/transport"
	"github.com/heartbeat-go/heartbeat/transport/conformance"
	"github.com/heartbeat-go/heartbeat/transport/wire"
)

// rawClient opens a WebSocket to url by hand: a bare TCP socket after the
// handshake, for peers no library would be (one that dribbles, one that
// never reads).
func rawClient(t *testing.T, url string) net.Conn {
	t.Helper()
	host := strings.TrimPrefix(url, "ws://")
	c, err := net.DialTimeout("tcp", host, conformance.Wait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	var key [16]byte
	_, _ = rand.Read(key[:])
	_ = c.SetDeadline(time.Now().Add(conformance.Wait))
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
		host, base64.StdEncoding.EncodeToString(key[:]))
	resp, err := http.ReadResponse(bufio.NewReaderSize(c, 1), nil) // byte by byte: nothing past the response is consumed
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %s", resp.Status)
	}
	_ = c.SetDeadline(time.Time{})
	return c
}

// clientFrame is a masked client frame (RFC 6455 §5.3) of one opcode.
func clientFrame(opcode byte, payload []byte) []byte {
	b := []byte{0x80 | opcode}
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	default:
		b = append(b, 0x80|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	}
	mask := [4]byte{1, 2, 3, 4}
	b = append(b, mask[:]...)
	for i, p := range payload {
		b = append(b, p^mask[i%4])
	}
	return b
}

// TestDribbledFrames: a peer that sends its frames one byte per TCP
// segment (an edge-triggered reader that drops a partial frame would lose
// them, gobwas/ws#121, #143) is read whole: a ping with its Seq, a data
// message, a ping again.
func TestDribbledFrames(t *testing.T) {
	s := newServer(t, ServerConfig{})
	url, accepted := conformance.Serve(t, func(w http.ResponseWriter, r *http.Request) (*Conn, error) {
		return s.Upgrade(w, r, Options{})
	})
	c := rawClient(t, url)
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	sc := accepted()
	t.Cleanup(func() { _ = sc.Close(nil) })
	rec := conformance.NewRecorder()
	if err := sc.Bind(rec); err != nil {
		t.Fatal(err)
	}
	var stream []byte
	stream = append(stream, clientFrame(0x9, wire.AppendControl(nil, 7, 0))...)
	stream = append(stream, clientFrame(0x2, make([]byte, 300))...) // a 16-bit length
	stream = append(stream, clientFrame(0x9, wire.AppendControl(nil, 8, 0))...)
	for i := range stream {
		if _, err := c.Write(stream[i : i+1]); err != nil {
			t.Fatalf("byte %d: %v", i, err)
		}
	}
	if f := rec.WaitFrame(t, transport.Ping); f.Seq != 7 {
		t.Errorf("first ping arrived with Seq %d, want 7", f.Seq)
	}
	rec.WaitFrame(t, transport.Data)
	if f := rec.WaitFrame(t, transport.Ping); f.Seq != 8 {
		t.Errorf("second ping arrived with Seq %d, want 8", f.Seq)
	}
}

// TestWriteQueueBound: a peer that stops reading gets at most
// MaxWriteQueue bytes queued for it; the write past that fails with
// ErrWriteQueueFull, the overflow is counted, the connection ends with that
// reason, and a peer that reads again finds close 1008 with the reason
// after the data.
func TestWriteQueueBound(t *testing.T) {
	const limit = 16 << 10
	s := newServer(t, ServerConfig{MaxWriteQueue: limit})
	sc, client := pair(t, s, nil, Options{}, nil)
	rec := conformance.NewRecorder()
	if err := sc.Bind(rec); err != nil {
		t.Fatal(err)
	}
	msg := make([]byte, 1024)
	ctx := context.Background()
	var err error
	sent := 0
	for ; sent < 1<<16 && err == nil; sent++ { // at most 64 MiB: the kernel's buffers hold far less
		err = sc.Write(ctx, BinaryMessage, msg)
		if q := sc.Queued(); q > limit {
			t.Fatalf("%d bytes queued, limit %d", q, limit)
		}
	}
	if !errors.Is(err, ErrWriteQueueFull) {
		t.Fatalf("after %d messages: %v, want ErrWriteQueueFull", sent, err)
	}
	if n := s.Stats().Overflows; n != 1 {
		t.Errorf("%d overflows counted, want 1", n)
	}
	// The peer reads again: the data, then the close frame with the reason.
	_ = client.SetReadDeadline(time.Now().Add(conformance.Wait))
	var got int
	for {
		_, _, rerr := client.ReadMessage()
		if rerr == nil {
			got++
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(rerr, &ce) || ce.Code != wire.ClosePolicyViolation || !strings.Contains(ce.Text, "write queue full") {
			t.Errorf("after %d messages the peer read %v, want close 1008 'write queue full'", got, rerr)
		}
		break
	}
	if got != sent-1 {
		t.Errorf("peer read %d messages, %d were accepted", got, sent-1)
	}
	if err := rec.WaitClosed(t); !errors.Is(err, ErrWriteQueueFull) {
		t.Errorf("the connection ended with %v, want ErrWriteQueueFull", err)
	}
	if q := s.Stats().Queued; q != 0 {
		t.Errorf("%d bytes still counted as queued after the end", q)
	}
}
