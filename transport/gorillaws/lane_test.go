package gorillaws

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heartbeat-go/heartbeat/transport"
	"github.com/heartbeat-go/heartbeat/transport/conformance"
	"github.com/heartbeat-go/heartbeat/transport/wire"
)

// A heartbeat never waits behind an application write: while a Write to a
// peer that does not read holds the writer, Send returns at once, and the
// ping goes out, with its Seq, as soon as the Write ends.
func TestSendNeverWaitsBehindWrite(t *testing.T) {
	for _, sub := range []string{"", wire.SubprotocolJSON} {
		name := sub
		if name == "" {
			name = "control"
		}
		t.Run(name, func(t *testing.T) {
			accepted := make(chan *Conn, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ws, err := (&websocket.Upgrader{Subprotocols: wire.Subprotocols()}).Upgrade(w, r, nil)
				if err != nil {
					return
				}
				c, err := Wrap(ws, Options{})
				if err != nil {
					return
				}
				accepted <- c
			}))
			defer srv.Close()
			// The client's socket buffers are capped, so a message of 8 MiB
			// is more than loopback holds.
			d := websocket.Dialer{Subprotocols: []string{sub}, NetDialContext: conformance.SmallBufferDial(64 << 10)}
			if sub == "" {
				d.Subprotocols = nil
			}
			client, _, err := d.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			c := <-accepted
			defer c.Close(nil)

			big := make([]byte, 8<<20)
			wrote := make(chan error, 1)
			go func() { wrote <- c.Write(context.Background(), websocket.BinaryMessage, big) }()
			for deadline := time.Now().Add(10 * time.Second); len(c.wmu) == 0; runtime.Gosched() {
				if time.Now().After(deadline) {
					t.Fatal("the Write never took the writer")
				}
			}
			sent := make(chan error, 1)
			go func() { sent <- c.Send(context.Background(), transport.Frame{Kind: transport.Ping, Seq: 42}) }()
			select {
			case err := <-sent:
				if err != nil {
					t.Fatalf("Send: %v", err)
				}
			case err := <-wrote:
				t.Fatalf("the Write ended (%v) before Send returned", err)
			case <-time.After(10 * time.Second):
				t.Fatal("Send waited behind the Write")
			}
			select {
			case err := <-wrote:
				t.Fatalf("the Write ended (%v) while the peer read nothing", err)
			default:
			}

			// The peer reads: the big message, then the ping.
			pinged := make(chan uint64, 1)
			client.SetPingHandler(func(data string) error {
				if seq, _, err := wire.ParseControl([]byte(data)); err == nil {
					pinged <- seq
				}
				return nil
			})
			_ = client.SetReadDeadline(time.Now().Add(30 * time.Second))
			for {
				_, msg, err := client.ReadMessage()
				if err != nil {
					t.Fatalf("client read: %v", err)
				}
				if len(msg) == len(big) {
					break
				}
			}
			if err := <-wrote; err != nil {
				t.Fatalf("Write: %v", err)
			}
			if sub == "" {
				go func() { _, _, _ = client.ReadMessage() }() // runs the ping handler
				select {
				case seq := <-pinged:
					if seq != 42 {
						t.Errorf("ping Seq %d, want 42", seq)
					}
				case <-time.After(10 * time.Second):
					t.Error("the deferred ping never arrived")
				}
				return
			}
			_, msg, err := client.ReadMessage()
			if err != nil {
				t.Fatal(err)
			}
			m, err := wire.Decode(msg)
			if err != nil || m.Type != wire.Ping || m.Seq != 42 {
				t.Errorf("after the message came %q (%v), want the ping with Seq 42", msg, err)
			}
		})
	}
}
