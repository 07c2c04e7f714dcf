// Command nbio is a presence server that keeps no goroutine per idle
// connection: transport/nbiows reads every WebSocket on an epoll loop,
// presence/nbiohandler hands each to the hub, and presence/promhub serves the
// hub's state as Prometheus metrics on /metrics. Every application message is
// echoed back; SIGTERM (or Ctrl-C) closes every client with 1001 and exits.
//
//	go run ./examples/nbio -addr 127.0.0.1:8080
//	go run ./examples/nbio -dial 'ws://127.0.0.1:8080/ws?user=ann&session=s1'
//	curl -s 127.0.0.1:8080/metrics | grep ^heartbeat_
//
// -ping and -dead shorten the heartbeat on both sides (the defaults are this
// library's); -dial runs a client of this library that prints its state
// changes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/policy"
	"github.com/heartbeat-go/heartbeat/presence"
	"github.com/heartbeat-go/heartbeat/presence/nbiohandler"
	"github.com/heartbeat-go/heartbeat/presence/promhub"
	"github.com/heartbeat-go/heartbeat/transport/gorillaws"
	"github.com/heartbeat-go/heartbeat/transport/nbiows"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	dial := flag.String("dial", "", "run a client of this library against this ws:// URL instead of a server")
	ping := flag.Duration("ping", 0, "ping period of both sides (0: the library's defaults)")
	dead := flag.Duration("dead", 0, "silence after which a peer is dead, suspect at half (with -ping)")
	resume := flag.Duration("resume", 0, "resume window of a lost session (0: derived)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var set func() policy.Set
	if *ping > 0 && *dead > 0 {
		set = func() policy.Set {
			return policy.Set{
				Detector: &policy.Fixed{SuspectAfter: *dead / 2, DeadAfter: *dead},
				Interval: &policy.Every{Period: *ping},
				Backoff:  &policy.Constant{Delay: *ping},
			}
		}
	}
	if *dial != "" {
		if err := client(ctx, *dial, set); err != nil {
			log.Fatal(err)
		}
		return
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	if err := serve(ctx, ln, set, *resume); err != nil {
		log.Fatal(err)
	}
}

// serve runs the server on ln until ctx is done, then shuts it down.
func serve(ctx context.Context, ln net.Listener, set func() policy.Set, resume time.Duration) error {
	var outMu sync.Mutex
	printf := func(format string, args ...any) {
		outMu.Lock()
		defer outMu.Unlock()
		fmt.Printf(format, args...)
	}
	m := promhub.New(promhub.Config{})
	srv, err := nbiows.NewServer(nbiows.ServerConfig{OnRTT: m.ObserveRTT})
	if err != nil {
		return err
	}
	defer srv.Close()
	hcfg := presence.HubConfig{Observe: m.Observe, ResumeWindow: resume}
	if set != nil {
		hcfg.Policies = func() policy.Set {
			s := set()
			s.Backoff = nil // the server side has no backoff
			return s
		}
	}
	hub, err := presence.NewHub(hcfg)
	if err != nil {
		return err
	}
	m.Hub = hub
	m.Queues = func() promhub.QueueStats {
		s := srv.Stats()
		return promhub.QueueStats{Queued: s.Queued, Overflows: s.Overflows}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)

	ws, err := nbiohandler.New(nbiohandler.Config{
		Hub:    hub,
		Server: srv,
		// A demo trusts the query; a real server checks a token here.
		Authenticate: func(r *http.Request) (presence.Identity, error) {
			q := r.URL.Query()
			user, session := q.Get("user"), q.Get("session")
			if user == "" {
				return presence.Identity{}, errors.New("no user")
			}
			if session == "" {
				session = r.RemoteAddr
			}
			return presence.Identity{User: user, Session: session}, nil
		},
		OnConnect: func(c *nbiohandler.Client) {
			printf("connect %s/%s\n", c.Identity.User, c.Identity.Session)
		},
		OnMessage: func(c *nbiohandler.Client, mt int, data []byte) {
			_ = c.Write(context.Background(), mt, data) // never blocks
		},
		OnDisconnect: func(c *nbiohandler.Client, err error) {
			printf("disconnect %s/%s: %v\n", c.Identity.User, c.Identity.Session, err)
		},
		OnRefused: func(_ *http.Request, status int) { m.Refused(status) },
	})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/ws", ws)
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case <-ctx.Done():
	case err := <-errc:
		_ = hub.Shutdown(context.Background())
		return err
	}
	// http.Server.Shutdown leaves the hijacked WebSockets alone: the hub
	// closes them with 1001 and waits for every leave.
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() { _ = hs.Shutdown(sctx) }()
	err = hub.Shutdown(sctx)
	<-errc
	printf("shut down\n")
	return err
}

// client runs this library's client against url until ctx is done,
// printing every state change.
func client(ctx context.Context, url string, set func() policy.Set) error {
	cfg := fsm.DriverConfig{
		Dialer: &gorillaws.Dialer{
			URL: url,
			OnConnect: func(c *gorillaws.Conn) {
				go func() { // drain what the server sends (the echo)
					for {
						if _, _, err := c.Read(ctx); err != nil {
							return
						}
					}
				}()
			},
		},
		OnChange: func(c fsm.Change) { fmt.Println(c) },
	}
	if set != nil {
		s := set()
		cfg.Config = fsm.Config{Detector: s.Detector, Interval: s.Interval, Backoff: s.Backoff}
	}
	d, err := fsm.Run(ctx, cfg)
	if err != nil {
		return err
	}
	<-ctx.Done()
	return d.Close()
}
