package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	gorilla "github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/heartbeat-go/heartbeat/examples/internal/outputtest"
	"github.com/heartbeat-go/heartbeat/presence"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func start(t *testing.T) (addr string, out *outputtest.Output, stop func() error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out = outputtest.New()
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln, out, 100) }()
	return ln.Addr().String(), out, func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(15 * time.Second):
			t.Fatal("the server did not shut down within 15 s")
			return nil
		}
	}
}

// TestServerChatAndPresence: a user joins, chats, and leaves on a clean
// close; a request without a user is refused; the page is served.
func TestServerChatAndPresence(t *testing.T) {
	addr, out, stop := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if _, resp, err := websocket.Dial(ctx, "ws://"+addr+"/ws", nil); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("dial without a user: %v", err)
	}
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "EventSource(\"/presence\")") {
		t.Fatalf("the page: %.80q", body)
	}

	ws, _, err := websocket.Dial(ctx, "ws://"+addr+"/ws?user=ann", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.Write(ctx, websocket.MessageText, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := ws.Read(ctx); err != nil || string(msg) != `{"from":"ann","text":"hi"}` {
		t.Fatalf("broadcast: %s, %v", msg, err)
	}
	out.WaitFor(t, "ann joined")
	out.WaitFor(t, "msg=online")
	_ = ws.Close(websocket.StatusNormalClosure, "bye")
	out.WaitFor(t, "ann left (closed)")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	out.WaitFor(t, "shut down")
}

// TestServerShutdown: on Ctrl-C (or SIGTERM) the server closes a live and a
// frozen client (one that never reads) with 1001, reports both leaving,
// and returns within the close timeout.
func TestServerShutdown(t *testing.T) {
	addr, out, stop := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	live, _, err := websocket.Dial(ctx, "ws://"+addr+"/ws?user=ann", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer live.CloseNow()
	frozen, _, err := gorilla.DefaultDialer.Dial("ws://"+addr+"/ws?user=bob", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer frozen.Close()
	// The live client says something so the server knows it is alive; the
	// frozen one pings once (a frame is evidence) and then never reads.
	if err := live.Write(ctx, websocket.MessageText, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if err := frozen.WriteControl(gorilla.PingMessage, nil, time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	out.WaitFor(t, "ann joined")
	out.WaitFor(t, "bob joined")
	readErr := make(chan error, 1)
	go func() {
		for {
			if _, _, err := live.Read(ctx); err != nil {
				readErr <- err
				return
			}
		}
	}()
	began := time.Now()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	took := time.Since(began)
	out.WaitFor(t, "ann left (closed)")
	out.WaitFor(t, "bob left (closed)")
	if err := <-readErr; websocket.CloseStatus(err) != websocket.StatusGoingAway || !strings.Contains(err.Error(), presence.ErrShutdown.Error()) {
		t.Errorf("the live client read %v, want 1001 %q", err, presence.ErrShutdown)
	}
	if took > 5*time.Second {
		t.Errorf("shutdown took %v with a frozen client", took)
	}
	t.Logf("shutdown with a live and a frozen client took %v", took)
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatal("test ran out of time")
	}
}
