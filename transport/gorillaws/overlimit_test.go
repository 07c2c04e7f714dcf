package gorillaws_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heartbeat-go/heartbeat/transport/gorillaws"
)

// pipeHijacker hands gorilla's Upgrade one end of a net.Pipe.
type pipeHijacker struct {
	http.ResponseWriter
	conn net.Conn
	rw   *bufio.ReadWriter
}

func (h pipeHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) { return h.conn, h.rw, nil }

// pipeServer serves one WebSocket over net.Pipe (so the test can run in a
// synctest bubble): it upgrades, wraps with opts and binds; served gets the
// error that ended the connection. client is the dialer's end.
func pipeServer(opts gorillaws.Options) (client net.Conn, served <-chan error) {
	server, client := net.Pipe()
	done := make(chan error, 1)
	go func() {
		br := bufio.NewReader(server)
		req, err := http.ReadRequest(br)
		if err != nil {
			done <- err
			return
		}
		rw := bufio.NewReadWriter(br, bufio.NewWriter(server))
		ws, err := (&websocket.Upgrader{}).Upgrade(pipeHijacker{conn: server, rw: rw}, req, nil)
		if err != nil {
			done <- err
			return
		}
		c, err := gorillaws.Wrap(ws, opts)
		if err != nil {
			done <- err
			return
		}
		ev := &endEvents{end: make(chan error, 1)}
		if err := c.Bind(ev); err != nil {
			done <- err
			return
		}
		err = <-ev.end
		_ = c.Close(err)
		done <- err
	}()
	return client, done
}

// A peer still sending an over-limit message after the close timeout (a
// browser tab starved of CPU) is not cut off mid-message: the server reads
// and discards the rest, so the peer's writes all land and it reads 1009
// rather than a reset.
func TestOverLimitWaitsForASlowSender(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const closeTimeout = 100 * time.Millisecond
		client, served := pipeServer(gorillaws.Options{ReadLimit: 100, CloseTimeout: closeTimeout})
		d := websocket.Dialer{NetDialContext: func(context.Context, string, string) (net.Conn, error) { return client, nil }}
		ws, _, err := d.Dial("ws://pipe/", nil)
		if err != nil {
			t.Fatal(err)
		}
		closeCode := make(chan int, 1)
		go func() {
			_, _, err := ws.ReadMessage()
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				closeCode <- ce.Code
				return
			}
			closeCode <- 0
		}()
		// One masked text frame of 1,000 bytes (a zero mask key leaves the
		// payload as is), sent in four parts with pauses of 1.5 close
		// timeouts between them.
		const size = 1000
		head := []byte{0x81, 0x80 | 126, size >> 8, size & 0xff, 0, 0, 0, 0}
		if _, err := client.Write(head); err != nil {
			t.Fatal(err)
		}
		part := bytes.Repeat([]byte("x"), size/4)
		for i := range 4 {
			if _, err := client.Write(part); err != nil {
				t.Fatalf("part %d of the message: %v (the server gave up on a peer still sending)", i, err)
			}
			time.Sleep(closeTimeout * 3 / 2)
		}
		if code := <-closeCode; code != websocket.CloseMessageTooBig {
			t.Errorf("the client read close %d, want 1009", code)
		}
		if err := <-served; !errors.Is(err, websocket.ErrReadLimit) {
			t.Errorf("the read loop ended with %v, want ErrReadLimit", err)
		}
		_ = client.Close()
	})
}
