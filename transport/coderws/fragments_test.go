//go:build !js

package coderws

import (
	"errors"
	"net/http"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"

	"github.com/heartbeat-go/heartbeat/transport"
	"github.com/heartbeat-go/heartbeat/transport/conformance"
)

type endOnly struct{ end chan error }

func (endOnly) Frame(transport.Frame) {}
func (e endOnly) Closed(err error)    { e.end <- err }

// A message of empty fragments that never ends, with pings between them:
// coder reads it inside one call, so only the message timeout ends it. The
// peer reads 1008 once it has passed, and the read loop ends with
// ErrMessageTimeout.
func TestEndlessFragmentsClosed(t *testing.T) {
	const timeout = 300 * time.Millisecond
	url, accepted := conformance.Serve(t, func(w http.ResponseWriter, r *http.Request) (*Conn, error) {
		return Accept(w, r, nil, Options{MessageTimeout: timeout})
	})
	ws, _, err := gorilla.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	s := accepted()
	defer s.Close(nil)
	ev := endOnly{end: make(chan error, 1)}
	if err := s.Bind(ev); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() {
		_, _, err := ws.ReadMessage()
		closed <- err
	}()
	// Raw masked frames (zero mask key): a text frame that is not final,
	// then empty continuations as fast as the socket takes them, a ping
	// every 1,000.
	nc := ws.NetConn()
	start := time.Now()
	if _, err := nc.Write([]byte{0x01, 0x80, 0, 0, 0, 0}); err != nil {
		t.Fatal(err)
	}
	cont, ping := []byte{0x00, 0x80, 0, 0, 0, 0}, []byte{0x89, 0x80, 0, 0, 0, 0}
send:
	for i := 0; time.Since(start) < 10*time.Second; i++ { // bounded
		f := cont
		if i%1000 == 0 {
			f = ping
		}
		if _, err := nc.Write(f); err != nil {
			break // the server closed the socket
		}
		select {
		case err := <-closed:
			closed <- err
			break send
		default:
		}
	}
	var ce *gorilla.CloseError
	select {
	case err := <-closed:
		if !errors.As(err, &ce) || ce.Code != gorilla.ClosePolicyViolation {
			t.Errorf("the client read %v, want close 1008", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no close")
	}
	if took := time.Since(start); took < timeout {
		t.Errorf("closed after %v, before the message timeout %v", took, timeout)
	}
	select {
	case err := <-ev.end:
		if !errors.Is(err, ErrMessageTimeout) {
			t.Errorf("the read loop ended with %v, want ErrMessageTimeout", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the read loop did not end")
	}
}
