package gorillaws_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/gorilla/websocket"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/transport/gorillaws"
)

// A server watches each accepted connection; a client dials through the
// heartbeat, which redials after a loss.
func Example() {
	online := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		c, _ := gorillaws.Wrap(ws, gorillaws.Options{})
		d, err := c.Watch(context.Background(), fsm.DriverConfig{}, fsm.Presence{
			Online:  func() { online <- "peer online" }, // once per connection
			Offline: func(ch fsm.Change) {},
		})
		if err != nil {
			return
		}
		go func() {
			defer d.Close()
			for { // the application reads through the Conn
				typ, msg, err := c.Read(context.Background())
				if err != nil {
					return
				}
				_ = c.Write(context.Background(), typ, msg)
			}
		}()
	}))
	defer srv.Close()

	alive := make(chan fsm.Change, 1)
	echo := make(chan string, 1)
	d, err := fsm.Run(context.Background(), fsm.DriverConfig{
		Dialer: &gorillaws.Dialer{
			URL: "ws" + strings.TrimPrefix(srv.URL, "http"),
			OnConnect: func(c *gorillaws.Conn) {
				go func() {
					_ = c.Write(context.Background(), websocket.TextMessage, []byte("hello"))
					if _, msg, err := c.Read(context.Background()); err == nil {
						echo <- string(msg)
					}
				}()
			},
		},
		OnChange: func(c fsm.Change) {
			if c.To == fsm.Alive {
				select { // OnChange must not block
				case alive <- c:
				default:
				}
			}
		},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(<-alive)
	fmt.Println(<-online)
	fmt.Println(<-echo)
	_ = d.Close()
	// Output:
	// connecting → alive (connected)
	// peer online
	// hello
}
