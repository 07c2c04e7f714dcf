package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type output struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	wake chan struct{}
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
	return o.buf.Write(p)
}

func (o *output) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		o.mu.Lock()
		ok := strings.Contains(o.buf.String(), s)
		o.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-o.wake:
		case <-deadline:
			t.Fatalf("no %q in output:\n%s", s, o.buf.String())
		}
	}
}

// TestServer: a coder client connects, is reported online, gets its echo,
// and is reported offline when it leaves.
func TestServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := &output{wake: make(chan struct{}, 1)}
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
	out.waitFor(t, "c-1 online")
	_ = ws.Close(websocket.StatusNormalClosure, "bye")
	out.waitFor(t, "c-1 offline: alive → dead (peer closed)")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
