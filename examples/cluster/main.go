// Command cluster is one node of a presence cluster shared through Redis
// (docs/cluster.md): users connect over WebSocket to any node, and every
// node answers who is online on all of them.
//
// Run two nodes on one Redis and a client on one of them:
//
//	go run ./examples/cluster -id n1 -listen 127.0.0.1:8081 -redis 127.0.0.1:6379
//	go run ./examples/cluster -id n2 -listen 127.0.0.1:8082 -redis 127.0.0.1:6379
//	go run ./examples/cluster -dial 'ws://127.0.0.1:8081/ws?user=ann&session=tab-1'
//	curl http://127.0.0.1:8082/online   # {"seq":2,"users":{"ann":{"tab-1":1}}}
//
// A node serves /ws (the WebSocket; user and session in the query),
// /online (who is online cluster-wide, as JSON: user → session → how many
// nodes hold it) and /events (every presence event it delivered, one a
// line). SIGTERM or Ctrl-C shuts it down gracefully: its users leave every
// node at once. A client (-dial) closes cleanly on SIGTERM or Ctrl-C (1000,
// a logout: its session leaves at once).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/goleak"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/presence"
	"github.com/heartbeat-go/heartbeat/presence/cluster"
	"github.com/heartbeat-go/heartbeat/transport/gorillaws"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "listen address of the node")
	redisAddr := flag.String("redis", "127.0.0.1:6379", "Redis address")
	id := flag.String("id", "node-1", "node ID: unique among live nodes, stable across restarts")
	lease := flag.Duration("lease", 0, "lease TTL in Redis (0: cluster.DefaultLeaseTTL)")
	resume := flag.Duration("resume", 0, "resume window of a lost session (0: derived)")
	checkLeaks := flag.Bool("check-leaks", false, "after shutdown, report goroutines and sockets left open, and exit 1 if any")
	dial := flag.String("dial", "", "run as a client of this URL instead of a node")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	var err error
	if *dial != "" {
		err = client(ctx, *dial, os.Stdout)
	} else {
		err = node(ctx, nodeConfig{listen: *listen, redis: *redisAddr, id: *id, lease: *lease, resume: *resume}, os.Stdout)
	}
	stop()
	if err != nil {
		log.Fatal(err)
	}
	if *checkLeaks {
		if leaks := leaks(); leaks != "" {
			fmt.Println("leaks:", leaks)
			os.Exit(1)
		}
		fmt.Println("leaks: none")
	}
}

type nodeConfig struct {
	listen, redis, id string
	lease, resume     time.Duration
}

// node serves until ctx is done, then shuts down as docs/cluster.md says:
// the HTTP server, the hub (its sessions leave through the node), the node.
func node(ctx context.Context, cfg nodeConfig, out io.Writer) error {
	var (
		mu     sync.Mutex
		events []string
	)
	onEvent := func(e presence.Event) {
		mu.Lock()
		events = append(events, e.String())
		mu.Unlock()
		fmt.Fprintln(out, "event:", e)
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := cluster.New(sctx, cluster.Config{
		Addr: cfg.redis, NodeID: cfg.id, LeaseTTL: cfg.lease,
		Logger: slog.New(slog.NewTextHandler(out, nil)),
	})
	if err != nil {
		return err
	}
	hub, err := presence.NewHub(presence.HubConfig{
		Cluster:      c,
		OnEvent:      onEvent,
		ResumeWindow: cfg.resume,
		Logger:       slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		_ = c.Close(sctx)
		return err
	}
	ws, err := presence.NewHandler(presence.HandlerConfig{
		Hub: hub,
		Authenticate: func(r *http.Request) (presence.Identity, error) {
			q := r.URL.Query()
			if q.Get("user") == "" || q.Get("session") == "" {
				return presence.Identity{}, &presence.StatusError{Code: http.StatusBadRequest, Err: errors.New("need user and session")}
			}
			return presence.Identity{User: q.Get("user"), Session: q.Get("session")}, nil
		},
	})
	if err != nil {
		_ = hub.Shutdown(sctx)
		_ = c.Close(sctx)
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/ws", ws)
	mux.HandleFunc("/online", func(w http.ResponseWriter, r *http.Request) {
		snap := hub.Snapshot() // cluster-wide, since HubConfig.Cluster is set
		users := map[string]map[string]int{}
		for _, u := range snap.Users {
			users[u.User] = map[string]int{}
			for _, s := range u.Sessions {
				users[u.User][s.Session] = s.Conns // in a cluster: the nodes holding it
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(online{Seq: snap.Seq, Users: users})
	})
	mux.HandleFunc("/events", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range events {
			fmt.Fprintln(w, e)
		}
	})
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		_ = hub.Shutdown(sctx)
		_ = c.Close(sctx)
		return err
	}
	fmt.Fprintf(out, "listening on http://%s/\n", ln.Addr())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	<-ctx.Done()

	sctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx) // leaves the hijacked WebSockets to the hub
	<-served
	err = errors.Join(err, hub.Shutdown(sctx), c.Close(sctx))
	fmt.Fprintln(out, "shut down:", err)
	return err
}

// online is the JSON of /online: each online user's sessions, each with
// how many nodes hold it, as of the node's event Seq.
type online struct {
	Seq   uint64                    `json:"seq"`
	Users map[string]map[string]int `json:"users"`
}

// client connects to url with this library's client (it reconnects with
// backoff) until ctx is done, then closes cleanly.
func client(ctx context.Context, url string, out io.Writer) error {
	// Not ctx: Close below ends the connection cleanly (1000, a logout).
	d, err := fsm.Run(context.Background(), fsm.DriverConfig{
		Dialer:   &gorillaws.Dialer{URL: url},
		OnChange: func(c fsm.Change) { fmt.Fprintln(out, c) },
	})
	if err != nil {
		return err
	}
	<-ctx.Done()
	return d.Close()
}

// leaks lists the goroutines and sockets still open, or returns "".
func leaks() string {
	var s []string
	if err := goleak.Find(); err != nil {
		s = append(s, err.Error())
	}
	fds, _ := os.ReadDir("/proc/self/fd") // Linux; elsewhere nothing to check
	for _, fd := range fds {
		if l, err := os.Readlink("/proc/self/fd/" + fd.Name()); err == nil && strings.HasPrefix(l, "socket:") {
			s = append(s, "open "+l)
		}
	}
	return strings.Join(s, "; ")
}
