// Command client dials examples/server with coder/websocket and keeps the
// connection honest: it prints every state change (connecting, alive,
// suspect, dead, reconnecting) with its reason, and sends a message every
// few seconds while connected. Stop the server and start it again to watch
// it notice and reconnect:
//
//	go run ./examples/client -url ws://127.0.0.1:8080/ws
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/coder/websocket"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/policy"
	"github.com/heartbeat-go/heartbeat/transport/coderws"
)

func main() {
	url := flag.String("url", "ws://127.0.0.1:8080/ws", "server address")
	every := flag.Duration("every", 3*time.Second, "how often to send a message")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *url, *every, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// closeTimeout bounds the close handshake at shutdown: a frozen server
// never answers the client's close frame, and coder alone would wait 5 s.
const closeTimeout = time.Second

// run keeps a connection to url until ctx is done, printing to out.
func run(ctx context.Context, url string, every time.Duration, out io.Writer) error {
	var apps sync.WaitGroup
	dialer := &coderws.Dialer{
		URL:     url,
		Options: coderws.Options{CloseTimeout: closeTimeout},
		// Called with each new connection: the application's reader and
		// writer live as long as that connection.
		OnConnect: func(c *coderws.Conn) {
			apps.Go(func() { talk(ctx, c, every, out) })
		},
	}
	d, err := fsm.Run(ctx, fsm.DriverConfig{
		Config: fsm.Config{
			Detector:       &policy.Fixed{SuspectAfter: 3 * time.Second, DeadAfter: 6 * time.Second},
			Interval:       &policy.Idle{Every: 2 * time.Second},
			Backoff:        &policy.Constant{Delay: time.Second},
			ConnectTimeout: 5 * time.Second,
		},
		Dialer:   dialer,
		OnChange: func(c fsm.Change) { fmt.Fprintf(out, "%s %v\n", c.At.Format("15:04:05.000"), c) },
	})
	if err != nil {
		return err
	}
	<-ctx.Done()
	_ = d.Close()
	apps.Wait()
	return nil
}

// talk sends a message every period and prints the echoes, until the
// connection ends.
func talk(ctx context.Context, c *coderws.Conn, every time.Duration, out io.Writer) {
	var writer sync.WaitGroup
	defer writer.Wait()
	writer.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for n := 1; ; n++ {
			select {
			case <-t.C:
			case <-c.Done():
				return
			}
			wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := c.Write(wctx, websocket.MessageText, fmt.Appendf(nil, "hello %d", n))
			cancel()
			if err != nil {
				return
			}
		}
	})
	for {
		_, msg, err := c.Read(ctx)
		if err != nil {
			return
		}
		fmt.Fprintf(out, "echo: %s\n", msg)
	}
}
