// Command server is a WebSocket echo server on gorilla/websocket whose
// every connection is watched by the heartbeat: it prints each peer going
// online and offline, and why. Run it with examples/client (coder on the
// other side), stop it with Ctrl-C and start it again to watch the client
// notice and reconnect:
//
//	go run ./examples/server -addr 127.0.0.1:8080
//	go run ./examples/client -url ws://127.0.0.1:8080/ws
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/policy"
	"github.com/heartbeat-go/heartbeat/transport/gorillaws"
	"github.com/heartbeat-go/heartbeat/transport/wire"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening on ws://%s/ws\n", ln.Addr())
	if err := serve(ctx, ln, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// serve runs the server on ln until ctx is done, printing presence to out.
func serve(ctx context.Context, ln net.Listener, out io.Writer) error {
	var (
		mu      sync.Mutex
		drivers = map[*fsm.Driver]bool{}
		wg      sync.WaitGroup
		ids     atomic.Int64
	)
	up := websocket.Upgrader{Subprotocols: wire.Subprotocols()} // browsers may ask for app-level heartbeats
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		ws, err := gorillaws.Upgrade(&up, w, r, nil) // the client's order of preference wins
		if err != nil {
			return
		}
		id := fmt.Sprintf("c-%d", ids.Add(1))
		c, err := gorillaws.Wrap(ws, gorillaws.Options{ConnID: id})
		if err != nil {
			_ = ws.Close()
			return
		}
		d, err := c.Watch(ctx, fsm.DriverConfig{
			Config: fsm.Config{
				Detector: &policy.Fixed{SuspectAfter: 3 * time.Second, DeadAfter: 6 * time.Second},
				Interval: &policy.Idle{Every: 2 * time.Second},
			},
			// Clients that lose this server spread their first redial
			// over this window (it rides in every ping).
			Advice: func() time.Duration { return 2 * time.Second },
		}, fsm.Presence{
			Online:  func() { fmt.Fprintf(out, "%s online (%s)\n", id, r.RemoteAddr) },
			Offline: func(ch fsm.Change) { fmt.Fprintf(out, "%s offline: %v\n", id, ch) },
		})
		if err != nil {
			return
		}
		mu.Lock()
		drivers[d] = true
		mu.Unlock()
		wg.Go(func() {
			defer func() {
				mu.Lock()
				delete(drivers, d)
				mu.Unlock()
			}()
			for { // echo
				typ, msg, err := c.Read(ctx)
				if err != nil {
					return
				}
				wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				err = c.Write(wctx, typ, msg)
				cancel()
				if err != nil {
					return
				}
			}
		})
	})
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case <-ctx.Done():
	case err := <-errc:
		return err
	}
	_ = hs.Close()
	mu.Lock()
	list := make([]*fsm.Driver, 0, len(drivers))
	for d := range drivers {
		list = append(list, d)
	}
	mu.Unlock()
	for _, d := range list {
		_ = d.Close() // the clients read close 1000, "heartbeat: closed"
	}
	wg.Wait()
	return nil
}
