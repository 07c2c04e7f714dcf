package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heartbeat-go/heartbeat/transport/wire"
)

// dialWorkers bounds the dials in flight.
const dialWorkers = 32

// clientPingTick is how often the pinger wakes to ping its share.
const clientPingTick = 20 * time.Millisecond

// drive opens n idle connections to url, each with a goroutine that reads
// (so gorilla's default handler answers the server's pings), and, if ping
// is positive, pings each connection every ping, spread evenly. The dials
// start evenly over spread. It prints
// "connected K failed F" once the dials are done, answers each "status"
// line on stdin with "open K dropped D pings P pongs Q" (the pings and
// pongs received so far), and closes everything when stdin
// ends.
func drive(url string, n int, ping, spread time.Duration, echo float64, stdin io.Reader, stdout io.Writer) error {
	if err := raiseFileLimit(); err != nil {
		return err
	}
	d := &websocket.Dialer{HandshakeTimeout: 10 * time.Second, ReadBufferSize: 1024, WriteBufferSize: 1024,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} // wss: the server's certificate is self-signed
	conns := make([]*websocket.Conn, n)
	var (
		closing        atomic.Bool
		dropped, fails atomic.Int64
		pings, pongs   atomic.Int64 // received from the server
		echoes         atomic.Int64 // messages received (the server's echoes)
		echoers        sync.WaitGroup
		stopEcho       = make(chan struct{})
		nEcho          = int(echo * float64(n))
		readers        sync.WaitGroup
		next           atomic.Int64
		dialers        sync.WaitGroup
		firstErr       atomic.Value
	)
	began := time.Now()
	for range dialWorkers {
		dialers.Add(1)
		go func() {
			defer dialers.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if at := began.Add(time.Duration(int64(spread) * int64(i) / int64(n))); spread > 0 {
					time.Sleep(time.Until(at))
				}
				ws, resp, err := d.DialContext(context.Background(), url, nil)
				if resp != nil && resp.Body != nil {
					_ = resp.Body.Close()
				}
				if err != nil {
					fails.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				conns[i] = ws
				// gorilla's default ping handler, counting.
				ws.SetPingHandler(func(data string) error {
					pings.Add(1)
					err := ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
					if errors.Is(err, websocket.ErrCloseSent) {
						return nil
					}
					var ne net.Error
					if errors.As(err, &ne) && ne.Timeout() {
						return nil
					}
					return err
				})
				ws.SetPongHandler(func(string) error { pongs.Add(1); return nil })
				if i < nEcho {
					echoers.Go(func() { echoLoop(ws, i, nEcho, stopEcho) })
				}
				readers.Add(1)
				go func() {
					defer readers.Done()
					for {
						if _, _, err := ws.ReadMessage(); err != nil {
							if !closing.Load() {
								dropped.Add(1)
							}
							return
						}
						echoes.Add(1)
					}
				}()
			}
		}()
	}
	dialers.Wait()
	fmt.Fprintf(stdout, "connected %d failed %d\n", int64(n)-fails.Load(), fails.Load())
	if e, ok := firstErr.Load().(string); ok {
		fmt.Fprintf(stdout, "error %s\n", e)
	}

	stopPing := make(chan struct{})
	pinged := make(chan struct{})
	go func() {
		defer close(pinged)
		if ping <= 0 || n == 0 {
			return
		}
		// Each tick pings the next share of the connections, so each is
		// pinged once per period and the pings are spread over it.
		per := max(1, int((int64(n)*int64(clientPingTick)+int64(ping)-1)/int64(ping)))
		t := time.NewTicker(clientPingTick)
		defer t.Stop()
		i := 0
		var seq uint64
		var payload []byte
		for {
			select {
			case <-stopPing:
				return
			case <-t.C:
			}
			for range per {
				if ws := conns[i]; ws != nil {
					// As this library's client pings: an 8-byte sequence.
					seq++
					payload = wire.AppendControl(payload[:0], seq, 0)
					_ = ws.WriteControl(websocket.PingMessage, payload, time.Now().Add(time.Second))
				}
				i = (i + 1) % n
			}
		}
	}()

	sc := bufio.NewScanner(stdin)
	for sc.Scan() {
		if sc.Text() == "status" {
			open := int64(n) - fails.Load() - dropped.Load()
			fmt.Fprintf(stdout, "open %d dropped %d pings %d pongs %d echoes %d\n", open, dropped.Load(), pings.Load(), pongs.Load(), echoes.Load())
		}
	}
	closing.Store(true)
	close(stopPing)
	close(stopEcho)
	echoers.Wait()
	<-pinged
	for _, ws := range conns {
		if ws != nil {
			_ = ws.Close()
		}
	}
	readers.Wait()
	return nil
}

// echoSize and echoEvery are the load: a message of echoSize bytes every
// echoEvery on each echoing connection, which the server sends back.
const (
	echoSize  = 1024
	echoEvery = time.Second
)

// echoLoop writes a message every echoEvery on ws, the i-th of k echoing
// connections (their phases spread over the period), until stop.
func echoLoop(ws *websocket.Conn, i, k int, stop <-chan struct{}) {
	msg := make([]byte, echoSize)
	phase := time.Duration(int64(echoEvery) * int64(i) / int64(k))
	select {
	case <-time.After(phase):
	case <-stop:
		return
	}
	t := time.NewTicker(echoEvery)
	defer t.Stop()
	for {
		_ = ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if err := ws.WriteMessage(websocket.BinaryMessage, msg); err != nil {
			return
		}
		select {
		case <-t.C:
		case <-stop:
			return
		}
	}
}
