package gorillaws

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heartbeat-go/heartbeat/transport"
	"github.com/heartbeat-go/heartbeat/transport/internal/wsconn"
)

type frames struct{ n chan transport.Frame }

func (f frames) Frame(fr transport.Frame) { f.n <- fr }
func (f frames) Closed(error)             {}

// With OnData every application message reaches the callback on the read
// goroutine, in order, each also reported as evidence; Read says where
// they went.
func TestOnDataDeliversInOrder(t *testing.T) {
	server, client := wsPair(t, nil, nil)
	got := make(chan string, 8)
	c, err := Wrap(server, Options{OnData: func(typ int, data []byte) { got <- fmt.Sprint(typ, ":", string(data)) }})
	if err != nil {
		t.Fatal(err)
	}
	ev := frames{make(chan transport.Frame, 8)}
	if err := c.Bind(ev); err != nil {
		t.Fatal(err)
	}
	defer c.Close(nil)
	for _, m := range []string{"one", "two", "three"} {
		if err := client.WriteMessage(websocket.TextMessage, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	timeout := time.After(5 * time.Second)
	for _, want := range []string{"1:one", "1:two", "1:three"} {
		select {
		case g := <-got:
			if g != want {
				t.Fatalf("got %q, want %q", g, want)
			}
		case <-timeout:
			t.Fatalf("no %q within 5 s", want)
		}
		if fr := <-ev.n; fr.Kind != transport.Data {
			t.Errorf("evidence reported as %v", fr.Kind)
		}
	}
	if _, _, err := c.Read(context.Background()); !errors.Is(err, wsconn.ErrOnData) {
		t.Fatalf("Read with OnData: %v", err)
	}
}
