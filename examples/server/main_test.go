package main

import (
	"context"
	"net"
	"testing"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/heartbeat-go/heartbeat/examples/internal/outputtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestServer: a coder client connects, is reported online, gets its echo,
// and is reported offline when it leaves.
func TestServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := outputtest.New()
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln, out) }()

	ws, _, err := websocket.Dial(ctx, "ws://"+ln.Addr().String()+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.Write(ctx, websocket.MessageText, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := ws.Read(ctx); err != nil || string(msg) != "hi" {
		t.Fatalf("echo: %q, %v", msg, err)
	}
	out.WaitFor(t, "c-1 online")
	_ = ws.Close(websocket.StatusNormalClosure, "bye")
	out.WaitFor(t, "c-1 offline: alive → closed (peer left)")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
