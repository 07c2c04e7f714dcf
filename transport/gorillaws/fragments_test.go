package gorillaws_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heartbeat-go/heartbeat/transport/gorillaws"
)

// A message of empty fragments that never ends, with a ping every second
// to look alive: gorilla reads it inside one call, so only the message
// timeout ends it. The peer reads 1008 when the timeout has passed, and
// the read loop ends with ErrMessageTimeout.
func TestEndlessFragmentsClosed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		client, served := pipeServer(gorillaws.Options{}) // the default message timeout
		d := websocket.Dialer{NetDialContext: func(context.Context, string, string) (net.Conn, error) { return client, nil }}
		ws, _, err := d.Dial("ws://pipe/", nil)
		if err != nil {
			t.Fatal(err)
		}
		closed := make(chan error, 1)
		go func() {
			_, _, err := ws.ReadMessage()
			closed <- err
		}()
		start := time.Now()
		// Masked frames, zero mask key: a text frame that is not final,
		// then empty continuations; a ping every 100 of them.
		first := []byte{0x01, 0x80, 0, 0, 0, 0}
		cont := []byte{0x00, 0x80, 0, 0, 0, 0}
		ping := []byte{0x89, 0x80, 0, 0, 0, 0}
		if _, err := client.Write(first); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 10000; i++ { // 100 s at 10 ms: bounded
			f := cont
			if i%100 == 0 {
				f = ping
			}
			if _, err := client.Write(f); err != nil {
				break // the server closed the socket
			}
			time.Sleep(10 * time.Millisecond)
		}
		took := time.Since(start)
		var ce *websocket.CloseError
		if err := <-closed; !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation {
			t.Errorf("the client read %v, want close 1008", err)
		}
		if err := <-served; !errors.Is(err, gorillaws.ErrMessageTimeout) {
			t.Errorf("the read loop ended with %v, want ErrMessageTimeout", err)
		}
		if took < gorillaws.DefaultMessageTimeout || took > gorillaws.DefaultMessageTimeout+100*time.Millisecond {
			t.Errorf("closed after %v, want the message timeout %v (within 100 ms)", took, gorillaws.DefaultMessageTimeout)
		}
		_ = client.Close()
	})
}
